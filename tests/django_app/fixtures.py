"""Keep the ORM's worker thread clean between tests.

``database_sync_to_async``, sync consumers and Django's async views all run ORM code in
asgiref's one shared thread. A connection a test leaves there (an in-memory SQLite one
cannot even be closed) would be touched by the next test's ``close_old_connections()``,
which pytest-django refuses in tests without database access. Import this fixture into a
test module that uses the database from async code; it is autouse.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from asgiref.sync import SyncToAsync
from django.db import connections


def _forget_connections() -> None:
    for conn in connections.all(initialized_only=True):
        conn.close()  # a no-op for in-memory SQLite: forgetting the wrapper releases it
        del connections[conn.alias]


@pytest.fixture(autouse=True)
def release_orm_thread() -> Iterator[None]:
    yield
    SyncToAsync.single_thread_executor.submit(_forget_connections).result(timeout=10)
