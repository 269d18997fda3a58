"""Running ORM code from async code, with Django's request-cycle connection hygiene."""

from __future__ import annotations

from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import close_old_connections


class DatabaseSyncToAsync(SyncToAsync):
    """``sync_to_async`` that closes stale or broken DB connections before and after the call.

    Django does this at the start and end of every request; long-lived consumers
    need it around each unit of ORM work instead, or a connection that the
    database dropped (or that passed ``CONN_MAX_AGE``) would be reused.
    """

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        # Looked up as this module's attribute at each call: the test communicators (and
        # users' own tests) replace ``hubbub.db.close_old_connections`` to keep connections.
        close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            close_old_connections()


#: Decorator (or wrapper) for sync functions that touch the database.
database_sync_to_async = DatabaseSyncToAsync


async def aclose_old_connections() -> None:
    """Close stale database connections from async code (in the ORM's thread)."""
    return await sync_to_async(close_old_connections)()
