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
    with psycopg.connect(
        dbname=conf["NAME"], user=conf["USER"], host=conf["HOST"], port=conf["PORT"], autocommit=True
    ) as conn:
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


TESTCASE_PROJECT = {
    "settings.py": """
import os
SECRET_KEY = "x"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "shop"]
DB_FILE = os.environ["SHOP_DB"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DB_FILE, "TEST": {"NAME": DB_FILE}}}
CHANNEL_LAYERS = {"default": {"BACKEND": "hubbub.layers.InMemoryChannelLayer"}}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
""",
    "shop/__init__.py": "",
    "shop/models.py": """
from django.db import models

class Item(models.Model):
    name = models.CharField(max_length=50)
""",
    "shop/consumers.py": """
from hubbub.db import database_sync_to_async
from hubbub.generic.websocket import AsyncJsonWebsocketConsumer, JsonWebsocketConsumer
from shop.models import Item

class AsyncItems(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content, **kwargs):
        await database_sync_to_async(Item.objects.create)(name=content["add"])
        names = await database_sync_to_async(lambda: sorted(Item.objects.values_list("name", flat=True)))()
        await self.send_json({"items": names})

class SyncItems(JsonWebsocketConsumer):
    def receive_json(self, content, **kwargs):
        Item.objects.create(name=content["add"])
        self.send_json({"items": sorted(Item.objects.values_list("name", flat=True))})
""",
    "shop/tests.py": """
from unittest import mock

from asgiref.sync import async_to_sync
from django.test import TestCase

import hubbub.db
from hubbub.db import database_sync_to_async
from hubbub.testing import WebsocketCommunicator
from shop.consumers import AsyncItems, SyncItems
from shop.models import Item


async def talk(consumer):
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to({"add": "pear"})
    answer = await communicator.receive_json_from()
    await communicator.disconnect()
    return answer


class ConsumersSeeTheTestTransaction(TestCase):
    @classmethod
    def setUpTestData(cls):
        Item.objects.create(name="apple")

    async def test_async_method_with_async_consumer(self):
        self.assertEqual(await talk(AsyncItems), {"items": ["apple", "pear"]})
        self.assertEqual(await Item.objects.acount(), 2)

    async def test_async_method_with_sync_consumer(self):
        self.assertEqual(await talk(SyncItems), {"items": ["apple", "pear"]})

    def test_sync_method(self):
        self.assertEqual(async_to_sync(talk)(AsyncItems), {"items": ["apple", "pear"]})
        self.assertEqual(Item.objects.count(), 2)

    def test_a_users_patch_of_the_module_attribute_is_used_and_restored(self):
        calls = []
        with mock.patch("hubbub.db.close_old_connections", lambda: calls.append(1)):
            async_to_sync(database_sync_to_async(Item.objects.count))()
            self.assertEqual(len(calls), 2)  # before and after the call
            async_to_sync(talk)(AsyncItems)
            self.assertEqual(len(calls), 2)  # the communicator kept connections open
            async_to_sync(database_sync_to_async(Item.objects.count))()
            self.assertEqual(len(calls), 4)  # and gave the user's function back
        from django.db import close_old_connections
        self.assertIs(hubbub.db.close_old_connections, close_old_connections)
""",
}


def test_orm_consumers_under_django_testcase_use_the_tests_open_connection(tmp_path):
    """Parity 4: with file-backed SQLite, consumers driven by communicators inside TestCase (sync and
    async test methods) see the test's transaction instead of finding the connection closed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    for name, text in TESTCASE_PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)]),
        "DJANGO_SETTINGS_MODULE": "settings",
        "SHOP_DB": str(tmp_path / "shop.sqlite3"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "django", "test", "shop", "-v", "2", "--noinput"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ran 4 tests" in result.stderr and "OK" in result.stderr
    assert (
        str(root / "hubbub")
        in subprocess.run(
            [sys.executable, "-c", "import hubbub; print(hubbub.__file__)"], env=env, capture_output=True, text=True
        ).stdout
    )
