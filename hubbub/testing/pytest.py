"""pytest fixture ``hubbub_live_server``: the ASGI application served for real, against the test database.

Load it in a ``conftest.py`` with ``pytest_plugins = ["hubbub.testing.pytest"]`` (needs
pytest-django). The server starts once per session; each test that uses the fixture
gets transactional database access, as with pytest-django's ``live_server``::

    def test_chat(hubbub_live_server):
        async with websockets.connect(hubbub_live_server.ws_url + "/ws/chat/lobby/") as ws:
            ...
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .live import LiveServer, make_application

__all__ = ["hubbub_live_server"]


@pytest.fixture(scope="session")
def _hubbub_live_server_session(django_db_setup: None) -> Iterator[LiveServer]:
    from django.apps import apps
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    wrapper = ASGIStaticFilesHandler if apps.is_installed("django.contrib.staticfiles") else None
    server = LiveServer(make_application(static_wrapper=wrapper), host="localhost").start()
    yield server
    server.stop()


@pytest.fixture
def hubbub_live_server(_hubbub_live_server_session: LiveServer, transactional_db: None) -> Iterator[LiveServer]:
    """The live server (``.url``, ``.ws_url``), with ``localhost`` added to ``ALLOWED_HOSTS`` for the test."""
    from django.test.utils import modify_settings

    with modify_settings(ALLOWED_HOSTS={"append": _hubbub_live_server_session.host}):
        yield _hubbub_live_server_session
