"""Live-server testing: ChannelsLiveServerTestCase driving headless Chromium, and the pytest fixture."""

from __future__ import annotations

import asyncio
import os
import re
import shutil

import httpx
import pytest
import websockets
from django.contrib.auth import get_user_model
from django.test import override_settings

from hubbub.testing import ChannelsLiveServerTestCase

pytest_plugins = ["hubbub.testing.pytest"]

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=800,600",
]


def chromium():
    """A headless Chromium through selenium; skips loudly when it is not installed (fails under CI=true)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        message = (
            f"BROWSER TEST SKIPPED: {' and '.join(missing)} not installed "
            "(Debian: apt-get install chromium chromium-driver)"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


SITE = dict(
    ASGI_APPLICATION="tests.django_app.asgi.application",
    ROOT_URLCONF="tests.django_app.urls",
)


@override_settings(**SITE)
class LiveSiteTests(ChannelsLiveServerTestCase):
    def test_urls_point_at_the_running_server(self):
        assert re.fullmatch(r"http://localhost:\d+", self.live_server_url)
        assert self.live_server_ws_url == self.live_server_url.replace("http://", "ws://")

    def test_browser_page_talks_to_a_consumer_and_gets_its_static_files(self):
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        driver = chromium()
        try:
            driver.get(self.live_server_url + "/echo/")
            wait = WebDriverWait(driver, 10)
            wait.until(lambda d: d.find_element(By.ID, "status").text == "open")
            driver.find_element(By.ID, "send").click()
            wait.until(
                lambda d: [li.text for li in d.find_elements(By.CSS_SELECTOR, "#log li")] == ["hello from the browser"]
            )
            # site.css came from the static files handler: the body text is its colour.
            assert driver.execute_script("return getComputedStyle(document.body).color") == "rgb(18, 52, 86)"
        finally:
            driver.quit()

    def test_server_uses_the_test_database(self):
        get_user_model().objects.create_user("carol", password="pw for the live server")
        client = httpx.Client(base_url=self.live_server_url)
        page = client.get("/login/")
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/login/", data={"username": "carol", "password": "pw for the live server", "csrfmiddlewaretoken": csrf}
        )
        assert response.status_code == 302

        async def whoami():
            async with websockets.connect(
                self.live_server_ws_url + "/ws/whoami/",
                origin=self.live_server_url,
                additional_headers=[("Cookie", f"sessionid={client.cookies['sessionid']}")],
            ) as ws:
                return await asyncio.wait_for(ws.recv(), 5)

        assert asyncio.run(whoami()) == '{"user": "carol"}'


async def test_pytest_fixture_serves_the_asgi_application(hubbub_live_server):
    """The fixture serves ASGI_APPLICATION (tests/asgi_app.py here: a WebSocket echo) plus static files."""
    assert hubbub_live_server.url.startswith("http://localhost:")
    async with websockets.connect(hubbub_live_server.ws_url + "/echo/") as ws:
        await ws.send("through the fixture")
        assert await asyncio.wait_for(ws.recv(), 5) == "through the fixture"
    async with httpx.AsyncClient() as client:
        response = await client.get(hubbub_live_server.url + "/static/django_app/site.css")
    assert response.status_code == 200 and "#123456" in response.text


def test_set_database_connection_names_the_test_database(monkeypatch):
    from types import SimpleNamespace

    from hubbub.testing import live

    for databases, expected in (
        ({"default": {"NAME": "shop"}}, "test_shop"),
        ({"default": {"NAME": "shop", "TEST": {"NAME": "shop_tests"}}}, "shop_tests"),
    ):
        monkeypatch.setattr(live, "settings", SimpleNamespace(DATABASES=databases))  # not the suite's own
        live.set_database_connection()
        assert databases["default"]["NAME"] == expected
    assert live.TEST_DATABASE_PREFIX == "test_"
