"""A Channels add-on, unchanged, on hubbub: djangochannelsrestframework through ``hubbub.compat``'s alias.

DCRF imports ``channels.consumer``, ``channels.db``, ``channels.generic.websocket`` and
``channels.layers``; nothing in it was edited. The alias is installed by a module fixture
(not at import, so other test modules never see it) and removed afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from hubbub.compat import ChannelsAliasError, install_channels_alias, uninstall_channels_alias
from hubbub.db import database_sync_to_async
from hubbub.testing import WebsocketCommunicator
from tests.django_app.models import Book

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent

#: Every module of Channels 4.3 and channels_redis 4.3 (docs: the porting section).
CHANNELS_MODULES = [
    "channels",
    "channels.apps",
    "channels.auth",
    "channels.consumer",
    "channels.db",
    "channels.exceptions",
    "channels.generic",
    "channels.generic.http",
    "channels.generic.websocket",
    "channels.layers",
    "channels.management",
    "channels.management.commands",
    "channels.management.commands.runworker",
    "channels.middleware",
    "channels.routing",
    "channels.security",
    "channels.security.websocket",
    "channels.sessions",
    "channels.testing",
    "channels.testing.application",
    "channels.testing.http",
    "channels.testing.live",
    "channels.testing.websocket",
    "channels.utils",
    "channels.worker",
    "channels_redis",
    "channels_redis.core",
    "channels_redis.pubsub",
    "channels_redis.serializers",
    "channels_redis.utils",
]


def _forget_dcrf() -> None:
    for name in [name for name in sys.modules if name.split(".")[0] == "djangochannelsrestframework"]:
        del sys.modules[name]


def _build_consumers() -> types.SimpleNamespace:
    """DCRF's documented consumers (README: generic API consumer, instance subscription, model observer).

    ObserverModelInstanceMixin brings DCRF's RetrieveModelMixin (retrieve) with it.
    """
    from djangochannelsrestframework.consumers import AsyncAPIConsumer
    from djangochannelsrestframework.decorators import action
    from djangochannelsrestframework.generics import GenericAsyncAPIConsumer
    from djangochannelsrestframework.mixins import CreateModelMixin, ListModelMixin
    from djangochannelsrestframework.observer import model_observer
    from djangochannelsrestframework.observer.generics import ObserverModelInstanceMixin
    from rest_framework import serializers

    class BookSerializer(serializers.ModelSerializer):
        class Meta:
            model = Book
            fields = ["id", "title", "author"]

    class BookConsumer(ListModelMixin, CreateModelMixin, ObserverModelInstanceMixin, GenericAsyncAPIConsumer):
        queryset = Book.objects.all()
        serializer_class = BookSerializer

    class BookActivity(AsyncAPIConsumer):
        @model_observer(Book)
        async def book_activity(self, message, observer=None, action=None, **kwargs):
            await self.send_json({"activity": action, "book": message})

        @book_activity.serializer
        def book_activity(self, instance, action, **kwargs):
            return dict(BookSerializer(instance).data)

        @action()
        async def subscribe_to_book_activity(self, request_id, **kwargs):
            await self.book_activity.subscribe(request_id=request_id)
            return {"subscribed": True}, 200

    return types.SimpleNamespace(BookConsumer=BookConsumer, BookActivity=BookActivity)


@pytest.fixture(scope="module")
def dcrf():
    import importlib.util

    if importlib.util.find_spec("djangochannelsrestframework") is None:
        message = "djangochannelsrestframework is not installed: `make test` installs it (pip install --no-deps)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    install_channels_alias()
    try:
        yield _build_consumers()
    finally:
        uninstall_channels_alias()
        _forget_dcrf()


async def connected(app) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(app, "/ws/books/")
    accepted, _ = await communicator.connect(timeout=5)
    assert accepted
    return communicator


async def test_dcrf_generic_api_consumer_creates_lists_and_retrieves_models(dcrf):
    """The README's generic consumer: create, list, retrieve (and a 404), replies in DCRF's format."""
    communicator = await connected(dcrf.BookConsumer.as_asgi())
    await communicator.send_json_to(
        {"action": "create", "request_id": 1, "data": {"title": "Dune", "author": "Herbert"}}
    )
    created = await communicator.receive_json_from(timeout=5)
    book_id = created["data"]["id"]
    assert created == {
        "action": "create",
        "errors": [],
        "response_status": 201,
        "request_id": 1,
        "data": {"id": book_id, "title": "Dune", "author": "Herbert"},
    }
    assert await Book.objects.filter(pk=book_id, title="Dune").aexists()

    await communicator.send_json_to({"action": "list", "request_id": 2})
    listed = await communicator.receive_json_from(timeout=5)
    assert listed["response_status"] == 200 and listed["data"] == [
        {"id": book_id, "title": "Dune", "author": "Herbert"}
    ]

    await communicator.send_json_to({"action": "retrieve", "request_id": 3, "pk": book_id})
    assert (await communicator.receive_json_from(timeout=5))["data"]["title"] == "Dune"
    await communicator.send_json_to({"action": "retrieve", "request_id": 4, "pk": book_id + 1000})
    missing = await communicator.receive_json_from(timeout=5)
    assert missing["response_status"] == 404 and missing["data"] is None and missing["errors"]
    await communicator.disconnect()


async def test_dcrf_instance_subscription_reports_changes_made_elsewhere(dcrf):
    """ObserverModelInstanceMixin: subscribe_instance, then a save in other code arrives as an 'update'."""
    book = await Book.objects.acreate(title="Emma", author="Austen")
    communicator = await connected(dcrf.BookConsumer.as_asgi())
    await communicator.send_json_to({"action": "subscribe_instance", "request_id": 7, "pk": book.pk})
    subscribed = await communicator.receive_json_from(timeout=5)
    assert subscribed["action"] == "subscribe_instance" and subscribed["response_status"] == 201

    def retitle():
        stored = Book.objects.get(pk=book.pk)
        stored.title = "Emma (2nd ed.)"
        stored.save()

    await database_sync_to_async(retitle)()  # the observer's signal handler group_sends from the ORM thread
    update = await communicator.receive_json_from(timeout=5)
    assert update["action"] == "update" and update["request_id"] == 7
    assert update["data"] == {"id": book.pk, "title": "Emma (2nd ed.)", "author": "Austen"}
    await communicator.disconnect()


async def test_dcrf_model_observer_streams_creations_and_deletions(dcrf):
    """@model_observer: after subscribing, every create and delete of the model reaches the consumer."""
    communicator = await connected(dcrf.BookActivity.as_asgi())
    await communicator.send_json_to({"action": "subscribe_to_book_activity", "request_id": 9})
    reply = await communicator.receive_json_from(timeout=5)
    assert reply["data"] == {"subscribed": True} and reply["response_status"] == 200

    book = await database_sync_to_async(Book.objects.create)(title="Ulysses", author="Joyce")
    created = await communicator.receive_json_from(timeout=5)
    assert created == {"activity": "create", "book": {"id": book.pk, "title": "Ulysses", "author": "Joyce"}}
    await database_sync_to_async(book.delete)()
    deleted = await communicator.receive_json_from(timeout=5)
    assert deleted["activity"] == "delete" and deleted["book"]["title"] == "Ulysses"
    await communicator.disconnect()


def test_every_channels_module_path_resolves_to_hubbubs_own_module(dcrf):
    """With the alias, each Channels/channels_redis module imports, as the hubbub module itself."""
    import importlib

    import hubbub.db
    import hubbub.layers.redis.core

    for name in CHANNELS_MODULES:
        assert importlib.import_module(name) is sys.modules[name], name
    channels = sys.modules["channels"]
    assert channels.__version__ == "4.3.2" and channels.DEFAULT_CHANNEL_LAYER == "default"
    assert sys.modules["channels_redis"].__version__ == "4.3.0"
    assert sys.modules["channels.db"] is hubbub.db and hubbub.db.__spec__.name == "hubbub.db"
    assert sys.modules["channels_redis.core"].RedisChannelLayer is hubbub.layers.redis.core.RedisChannelLayer
    assert not hasattr(hubbub.db, "__path__")  # a module stays a module under its second name


def test_alias_is_gone_after_uninstall_so_other_tests_see_no_channels(dcrf):
    """uninstall_channels_alias() leaves 'import channels' failing again, as without the alias."""
    import importlib

    uninstall_channels_alias()
    try:
        assert importlib.util.find_spec("channels") is None
        assert not any(name == "channels" or name.startswith("channels.") for name in sys.modules)
    finally:
        install_channels_alias()  # the rest of this module's tests still use it


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_alias_refuses_when_the_real_channels_is_installed(tmp_path):
    """A real ``channels`` on sys.path: install_channels_alias() raises ChannelsAliasError naming it and the fix."""
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "__init__.py").write_text("__version__ = '4.3.2'\n")
    result = _run(
        "import hubbub.compat\n"
        "try:\n"
        "    hubbub.compat.install_channels_alias()\n"
        "except hubbub.compat.ChannelsAliasError as error:\n"
        "    print('refused:', error)\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "refused: The real 'channels' package is installed" in result.stdout
    assert str(tmp_path / "channels") in result.stdout and "pip uninstall channels" in result.stdout
    assert issubclass(ChannelsAliasError, ImportError)


def documented_alias_line(document: str, heading: str) -> str:
    """The first Python block after ``heading`` in ``document`` (README.md, docs/tutorial.md)."""
    import re

    text = (ROOT / document).read_text()
    return re.search(re.escape(heading) + r".*?```python\n(.*?)```", text, re.S).group(1)


def test_documented_line_lets_an_addon_import_before_django_is_set_up(tmp_path):
    """The line the README and the tutorial give, first in a script: DCRF imports settings-free, names are hubbub's."""
    line = documented_alias_line("README.md", "### Third-party packages")
    assert documented_alias_line("docs/tutorial.md", "## Third-party packages written for Channels") == line
    result = _run(
        line + "import channels, hubbub.generic.websocket\n"
        "from channels.generic.websocket import AsyncJsonWebsocketConsumer\n"
        "import djangochannelsrestframework.scope_utils\n"
        "assert AsyncJsonWebsocketConsumer is hubbub.generic.websocket.AsyncJsonWebsocketConsumer\n"
        "print('channels', channels.__version__)\n",
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "channels 4.3.2"
