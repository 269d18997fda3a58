"""The ORM from consumers: database_sync_to_async on SQLite and PostgreSQL, stale connections closed."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from hubbub.db import aclose_old_connections, database_sync_to_async
from hubbub.generic.websocket import JsonWebsocketConsumer
from hubbub.testing import WebsocketCommunicator
from tests.django_app.models import Note

HAS_POSTGRES = "postgres" in settings.DATABASES
needs_postgres = pytest.mark.skipif(
    not HAS_POSTGRES,
    reason="PostgreSQL tests skipped: psycopg is not installed or nothing answers on 127.0.0.1:5432",
)


@database_sync_to_async
def add_note(text: str, using: str = "default") -> int:
    return Note.objects.using(using).create(text=text).pk


def count_notes(using: str = "default") -> int:
    return Note.objects.using(using).count()


class NoteTaker(JsonWebsocketConsumer):
    """A sync consumer writing to the database from its handler (run in a thread by hubbub)."""

    using = "default"

    def receive_json(self, content, **kwargs):
        Note.objects.using(self.using).create(text=content["text"])
        self.send_json({"notes": Note.objects.using(self.using).count()})


async def exercise_orm(using: str) -> None:
    await add_note("decorated", using)  # the decorator form
    assert await database_sync_to_async(count_notes)(using) == 1  # the wrapper form
    communicator = WebsocketCommunicator(NoteTaker.as_asgi(using=using), "/ws/")
    assert (await communicator.connect())[0]
    for expected in (2, 3):
        await communicator.send_json_to({"text": f"note {expected}"})
        assert await communicator.receive_json_from() == {"notes": expected}
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_orm_from_async_and_sync_consumers_on_sqlite():
    await exercise_orm("default")


@needs_postgres
@pytest.mark.django_db(transaction=True, databases=["default", "postgres"])
async def test_orm_from_async_and_sync_consumers_on_postgres():
    await exercise_orm("postgres")


def backend_pid() -> int:
    with connections["postgres"].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def observe(sql: str, *params: object) -> list:
    """Run ``sql`` on a connection of its own (not Django's), to watch the ORM's from outside."""
    import psycopg

    conf = connections["postgres"].settings_dict
    with psycopg.connect(dbname=conf["NAME"], user=conf["USER"], host=conf["HOST"], port=conf["PORT"], autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def live_backend_pids() -> set:
    return {row[0] for row in observe("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")}


def kill_backend(pid: int) -> None:
    observe("SELECT pg_terminate_backend(%s)", pid)


@pytest.fixture
async def postgres_conn_settings():
    """Lets a test change CONN_MAX_AGE / CONN_HEALTH_CHECKS of the postgres alias, restoring them after."""
    conf = connections.settings["postgres"]
    saved = {key: conf[key] for key in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")}
    yield conf
    conf.update(saved)
    # The ORM thread may keep a connection open; the test database cannot be dropped with it.
    await sync_to_async(lambda: connections["postgres"].close())()


@needs_postgres
@pytest.mark.django_db(transaction=True, databases=["default", "postgres"])
async def test_connection_is_closed_after_each_call_by_default(postgres_conn_settings):
    postgres_conn_settings["CONN_MAX_AGE"] = 0  # Django's default: a connection per request
    used = await database_sync_to_async(backend_pid)()
    # Seen from another connection: the ORM thread's connection is already gone.
    assert used not in live_backend_pids()


@needs_postgres
@pytest.mark.django_db(transaction=True, databases=["default", "postgres"])
async def test_persistent_connection_dropped_by_the_server_is_replaced(postgres_conn_settings):
    postgres_conn_settings["CONN_MAX_AGE"] = 600
    postgres_conn_settings["CONN_HEALTH_CHECKS"] = True
    first = await database_sync_to_async(backend_pid)()
    assert await database_sync_to_async(backend_pid)() == first  # kept between calls
    kill_backend(first)  # the database restarts, a proxy times the connection out, ...
    second = await database_sync_to_async(backend_pid)()
    assert second != first


@needs_postgres
@pytest.mark.django_db(transaction=True, databases=["default", "postgres"])
async def test_aclose_old_connections_closes_an_expired_connection(postgres_conn_settings):
    postgres_conn_settings["CONN_MAX_AGE"] = 600
    pid = await sync_to_async(backend_pid)()  # plain sync_to_async: nothing closes it

    def expire() -> None:
        connections["postgres"].close_at = 0  # past its CONN_MAX_AGE

    await sync_to_async(expire)()
    assert pid in live_backend_pids()
    await aclose_old_connections()
    assert pid not in live_backend_pids()
