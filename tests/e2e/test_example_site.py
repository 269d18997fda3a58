"""End to end: the demo site in real uvicorn processes, driven by WebSocket clients and Chromium.

Every test that involves two users runs twice: on the in-memory layer with one server
(both users on it), and on the Redis layer with two server processes sharing one SQLite
database (user A on one process, user B on the other), which shows cross-process delivery.
Servers and browsers are started once per module and shared; each test uses its own
room, table and comment text so tests cannot see each other's traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.servers import EXAMPLES, ROOT, Process, uvicorn

IN_CI = os.environ.get("CI", "").lower() == "true"
TIMEOUT = 10.0  # generous: the suite shares two cores with other servers
PASSWORD = "hubbub-demo"  # the demo accounts' password (examples/notifications/accounts.py)
TOKEN = "demo-dashboard-token"  # the demo's default DASHBOARD_TOKEN

pytestmark = pytest.mark.timeout(90)


class Site:
    """The demo site on one or two server processes sharing a database."""

    def __init__(self, servers: list[Process]):
        self.servers = servers

    def http(self, which: int = 0) -> str:
        return self.servers[which % len(self.servers)].url  # type: ignore[attr-defined]

    def ws(self, which: int = 0) -> str:
        return self.servers[which % len(self.servers)].ws_url  # type: ignore[attr-defined]


class SitePool:
    """Starts each kind of site on first use and stops every process at the end of the module."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.sites: dict[str, Site] = {}
        self.processes: list[Process] = []

    def get(self, kind: str, redis_url: str | None = None, redis_prefix: str = "") -> Site:
        if kind not in self.sites:
            env = {
                "DJANGO_SETTINGS_MODULE": "demo.settings",
                "DEMO_DB": str(self.workdir / f"{kind}.sqlite3"),
                "DJANGO_DEBUG": "0",
            }
            if redis_url:
                env.update(DEMO_REDIS=redis_url, DEMO_REDIS_PREFIX=redis_prefix)
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "-v0", "--noinput"],
                cwd=EXAMPLES,
                check=True,
                timeout=60,
                env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(EXAMPLES)]), **env},
            )
            servers = [uvicorn(env=env) for _ in range(2 if redis_url else 1)]
            for server in servers:
                self.processes.append(server)
                server.start()
            self.sites[kind] = Site(servers)
        return self.sites[kind]

    def close(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SitePool]:
    sites = SitePool(tmp_path_factory.mktemp("demo-site"))
    yield sites
    sites.close()


@pytest.fixture(params=["memory", "redis"])
def site(request: pytest.FixtureRequest, pool: SitePool) -> Site:
    """The site on the in-memory layer (one process), then on Redis (two processes)."""
    if request.param == "redis":
        return pool.get("redis", request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix"))
    return pool.get("memory")


@pytest.fixture
def one_site(pool: SitePool) -> Site:
    """The in-memory site, for apps where nothing crosses between users."""
    return pool.get("memory")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def recv(socket: Any) -> Any:
    """The next frame, decoded from JSON."""
    return json.loads(await asyncio.wait_for(socket.recv(), TIMEOUT))


async def recv_until(socket: Any, check: Any) -> Any:
    """Read frames until one satisfies ``check`` (other traffic is skipped)."""
    while True:
        message = await recv(socket)
        if check(message):
            return message


async def closed_with(socket: Any) -> int:
    """Wait for the server to close ``socket``; the close code."""
    with pytest.raises(websockets.ConnectionClosed) as info:
        await asyncio.wait_for(socket.recv(), TIMEOUT)
    return info.value.rcvd.code


def connect(url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("origin", "http://" + url.split("/")[2])  # the site's own pages (cookie routes check it)
    return websockets.connect(url, open_timeout=TIMEOUT, close_timeout=1, **kwargs)


def cookie_header(client: httpx.AsyncClient) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in client.cookies.items())}


async def log_in(client: httpx.AsyncClient, base: str, username: str) -> None:
    """Log ``client`` in through Django's login view, as a browser would."""
    await client.get(f"{base}/accounts/login/")
    answer = await client.post(
        f"{base}/accounts/login/",
        data={"username": username, "password": PASSWORD, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert answer.status_code == 302, answer.text[:500]


# --- 1. chat rooms ---------------------------------------------------------------------------


async def test_chat_message_reaches_the_room_only(site: Site) -> None:
    room, other = unique("room"), unique("room")
    async with (
        connect(f"{site.ws(0)}/ws/chat/{room}/") as alice,
        connect(f"{site.ws(1)}/ws/chat/{room}/") as bob,
        connect(f"{site.ws(0)}/ws/chat/{other}/") as carol,
    ):
        me = await recv(alice)
        assert me["joined"] == room
        await recv(bob), await recv(carol)
        await alice.send(json.dumps({"message": "  hello room  "}))
        assert await recv(bob) == {"user": me["you"], "message": "hello room"}
        assert await recv(alice) == {"user": me["you"], "message": "hello room"}
        await carol.send(json.dumps({"message": "elsewhere"}))
        assert (await recv(carol))["message"] == "elsewhere"
        await alice.send(json.dumps({"message": "second"}))
        assert (await recv(bob))["message"] == "second"  # not "elsewhere": rooms do not leak


async def test_chat_name_comes_from_the_session(one_site: Site) -> None:
    room = unique("room")
    async with httpx.AsyncClient() as client:
        page = await client.get(f"{one_site.http()}/chat/{room}/")
        name = re.search(r'id="me">([^<]+)<', page.text).group(1)
        async with connect(f"{one_site.ws()}/ws/chat/{room}/", additional_headers=cookie_header(client)) as socket:
            assert (await recv(socket))["you"] == name
            await socket.send(json.dumps({"message": "hi"}))
            assert await recv(socket) == {"user": name, "message": "hi"}


async def test_chat_refuses_bad_input_with_a_message(one_site: Site) -> None:
    async with connect(f"{one_site.ws()}/ws/chat/{unique('room')}/") as socket:
        await recv(socket)
        for frame, error in [
            ("", "empty message"),
            ("x" * 5000, "message over 4096 bytes"),
            ("not json", "not JSON"),
            (b"\x00\x01", "binary frames are not used here; send text"),
            (json.dumps({"message": "   "}), '"message" is empty'),
            (json.dumps(["message"]), 'send a JSON object with a "message" string'),
            (json.dumps({"message": "y" * 501}), '"message" is longer than 500 characters'),
        ]:
            await socket.send(frame)
            assert await recv(socket) == {"error": error}
        await socket.send(json.dumps({"message": "still here"}))
        assert (await recv(socket))["message"] == "still here"


async def test_chat_refuses_a_room_name_that_is_not_a_group_name(one_site: Site) -> None:
    for bad in ["bad%20name", "dots.here", "x" * 120]:
        async with connect(f"{one_site.ws()}/ws/chat/{bad}/") as socket:
            assert "is not a room name" in (await recv(socket))["error"]
            assert await closed_with(socket) == 4400


async def test_chat_pages_normalise_room_names(one_site: Site) -> None:
    async with httpx.AsyncClient(base_url=one_site.http()) as client:
        assert (await client.get("/chat/?room=My Room!")).headers["location"] == "/chat/My-Room/"
        assert (await client.get("/chat/a.b/")).headers["location"] == "/chat/ab/"
        empty = await client.get("/chat/?room=%21%21", follow_redirects=True)
        assert "has no letters or digits" in empty.text


async def test_sync_echo(one_site: Site) -> None:
    async with connect(f"{one_site.ws()}/ws/echo/") as socket:
        await socket.send("ping")
        assert await asyncio.wait_for(socket.recv(), TIMEOUT) == "ping"
        await socket.send("")
        assert await asyncio.wait_for(socket.recv(), TIMEOUT) == "error: empty message"


# --- 2. echo with server close -----------------------------------------------------------------


async def test_stamped_echo_closes_when_asked(one_site: Site) -> None:
    async with connect(f"{one_site.ws()}/chat/socket/") as socket:
        await socket.send("hello")
        answer = await recv(socket)
        assert answer["echo"] == "hello" and re.match(r"\d{4}-\d\d-\d\dT", answer["at"])
        await socket.send("x" * 5000)
        assert (await recv(socket))["error"] == "message over 4096 bytes"
        await socket.send("close")
        assert (await recv(socket))["echo"] == "close"
        assert await closed_with(socket) == 1000


# --- 3. live dashboard -------------------------------------------------------------------------


async def test_dashboard_answers_requests_by_type(one_site: Site) -> None:
    async with connect(f"{one_site.ws()}/socket/all/?token={TOKEN}") as socket:
        await socket.send(json.dumps({"type": "all_patient_page_data"}))
        answer = await recv(socket)
        assert answer["code"] == 200 and answer["type"] == "all_patient_page_data"
        assert isinstance(answer["data"], list)
        for frame, code in [("{oops", 400), ("", 400), ("[1]", 400), (json.dumps({"type": "everything"}), 404)]:
            await socket.send(frame)
            assert (await recv(socket))["code"] == code
    async with connect(f"{one_site.ws()}/socket/all/", additional_headers={"token": TOKEN}) as socket:
        await socket.send(json.dumps({"type": "all_active_visit_data"}))
        assert (await recv(socket))["type"] == "all_active_visit_data"


async def test_dashboard_refuses_a_missing_or_wrong_token(one_site: Site) -> None:
    for query in ["", "?token=guess"]:
        async with connect(f"{one_site.ws()}/socket/all/{query}") as socket:
            assert (await recv(socket))["code"] == 401
            assert await closed_with(socket) == 4401


async def test_dashboard_views_push_to_every_tab(site: Site) -> None:
    name = unique("patient")
    async with (
        connect(f"{site.ws(0)}/socket/all/?token={TOKEN}") as tab_a,
        connect(f"{site.ws(1)}/socket/all/?token={TOKEN}") as tab_b,
        httpx.AsyncClient(base_url=site.http(0)) as client,
    ):
        await client.get("/dashboard/")
        csrf = {"X-CSRFToken": client.cookies["csrftoken"]}
        assert (await client.post("/dashboard/patients/", data={"name": name})).status_code == 403  # no CSRF token
        assert (await client.post("/dashboard/patients/", data={"name": " "}, headers=csrf)).status_code == 400
        assert (await client.post("/dashboard/patients/", data={"name": name}, headers=csrf)).json() == {"ok": True}

        def has_patient(message: dict[str, Any]) -> bool:
            return message.get("type") == "all_patient_page_data" and any(p["name"] == name for p in message["data"])

        for tab in (tab_a, tab_b):
            pushed = await recv_until(tab, has_patient)
            assert pushed["pushed"] is True
        patient = next(p for p in pushed["data"] if p["name"] == name)
        reason = unique("checkup")
        answer = await client.post(
            "/dashboard/visits/", data={"patient": patient["id"], "reason": reason}, headers=csrf
        )
        assert answer.json() == {"ok": True}
        visit = None
        for tab in (tab_a, tab_b):
            visits = await recv_until(
                tab,
                lambda m: m.get("type") == "all_active_visit_data" and any(v["reason"] == reason for v in m["data"]),
            )
            visit = next(v for v in visits["data"] if v["reason"] == reason)
        answer = await client.post(f"/dashboard/visits/{visit['id']}/end/", headers=csrf)
        assert answer.json() == {"ok": True}
        for tab in (tab_a, tab_b):
            await recv_until(
                tab,
                lambda m: m.get("type") == "all_active_visit_data" and all(v["reason"] != reason for v in m["data"]),
            )


# --- 4. shared table ---------------------------------------------------------------------------


async def test_table_order_is_shared_and_kept(site: Site) -> None:
    table = unique("t")
    async with (
        connect(f"{site.ws(0)}/ws/table/{table}/") as first,
        connect(f"{site.ws(1)}/ws/table/{table}/") as second,
    ):
        assert (await recv(first))["items"] == {} and (await recv(second))["items"] == {}
        steps = [
            (first, "add", "Tiramisu", {"Tiramisu": 1}),
            (first, "add", "Lemonade", {"Tiramisu": 1, "Lemonade": 1}),
            (second, "add", "Tiramisu", {"Tiramisu": 2, "Lemonade": 1}),
            (second, "remove", "Lemonade", {"Tiramisu": 2}),
        ]
        for diner, action, dish, order in steps:
            await diner.send(json.dumps({"action": action, "dish": dish}))
            for socket in (first, second):
                assert await recv(socket) == {
                    "type": "order",
                    "items": order,
                    "by": "a diner",
                    "action": action,
                    "dish": dish,
                }
        final = {"Tiramisu": 2}
    async with connect(f"{site.ws(1)}/ws/table/{table}/") as newcomer:
        assert (await recv(newcomer))["items"] == final
    async with httpx.AsyncClient() as client:
        assert "2 × Tiramisu" in (await client.get(f"{site.http(0)}/table/{table}/")).text


async def test_table_refuses_bad_input_with_a_message(one_site: Site) -> None:
    async with connect(f"{one_site.ws()}/ws/table/{unique('t')}/") as socket:
        await recv(socket)
        for frame, error in [
            ("", "empty message"),
            ("{", "not JSON"),
            ("z" * 5000, "message over 4096 bytes"),
            (json.dumps({"action": "eat", "dish": "Tiramisu"}), 'send {"action": "add" or "remove", "dish": ...}'),
            (json.dumps({"action": "add", "dish": "Caviar"}), "'Caviar' is not on the menu"),
        ]:
            await socket.send(frame)
            assert await recv(socket) == {"error": error}
    for bad in ["dots.here", "y" * 60, "sp%20ace"]:
        async with connect(f"{one_site.ws()}/ws/table/{bad}/") as socket:
            assert "is not a table id" in (await recv(socket))["error"]
            assert await closed_with(socket) == 4400


# --- 5. request/response -----------------------------------------------------------------------


async def test_request_response(one_site: Site) -> None:
    async with connect(f"{one_site.ws()}/ws/") as socket:
        request = {"action": "ping", "id": 7, "nested": [1, {"a": None}]}
        await socket.send(json.dumps(request))
        assert await recv(socket) == {"status": "OK", "data": request}
        await socket.send("nope")
        assert await recv(socket) == {"status": "error", "error": "not JSON"}
        await socket.send(json.dumps("x" * 5000))
        assert (await recv(socket))["status"] == "error"


# --- 6. notifications --------------------------------------------------------------------------


async def test_notifications_refuse_anonymous_users_and_foreign_origins(one_site: Site) -> None:
    origin = one_site.http()
    with pytest.raises(websockets.InvalidStatus) as anonymous:
        async with connect(f"{one_site.ws()}/ws/notifications/", origin=origin):
            pass
    assert anonymous.value.response.status_code == 403
    async with httpx.AsyncClient() as client:
        await log_in(client, one_site.http(), "carol")
        with pytest.raises(websockets.InvalidStatus) as foreign:
            async with connect(
                f"{one_site.ws()}/ws/notifications/",
                origin="http://evil.example",
                additional_headers=cookie_header(client),
            ):
                pass
        assert foreign.value.response.status_code == 403


async def test_comment_notifies_the_other_users(site: Site) -> None:
    text = unique("comment")
    async with httpx.AsyncClient() as alice_http, httpx.AsyncClient() as bob_http:
        await log_in(alice_http, site.http(0), "alice")
        await log_in(bob_http, site.http(1), "bob")
        async with (
            connect(
                f"{site.ws(0)}/ws/notifications/", origin=site.http(0), additional_headers=cookie_header(alice_http)
            ) as alice,
            connect(
                f"{site.ws(1)}/ws/notifications/", origin=site.http(1), additional_headers=cookie_header(bob_http)
            ) as bob,
        ):
            assert (await recv(alice))["type"] == "recent" and (await recv(bob))["type"] == "recent"
            for frame, error in [
                ("", "empty message"),
                ("[", "not JSON"),
                (json.dumps({"comment": "c" * 501}), '"comment" is longer than 500 characters'),
            ]:
                await alice.send(frame)
                assert await recv(alice) == {"error": error}
            await alice.send(json.dumps({"comment": text}))
            seen = await recv_until(bob, lambda m: m.get("type") == "comment" and m["comment"]["text"] == text)
            assert seen["comment"]["author"] == "alice" and seen["comment"]["mine"] is False
            mine = await recv_until(alice, lambda m: m.get("type") == "comment" and m["comment"]["text"] == text)
            assert mine["comment"]["mine"] is True
        async with connect(
            f"{site.ws(1)}/ws/notifications/", origin=site.http(1), additional_headers=cookie_header(bob_http)
        ) as later:
            assert text in [c["text"] for c in (await recv(later))["comments"]]


# --- the pages in Chromium ---------------------------------------------------------------------

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=420,900",
]


def new_browser() -> Any:
    """A headless Chromium through chromedriver (a fresh profile: its own cookies)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.fixture(scope="module")
def browsers() -> Iterator[list[Any]]:
    """Two browsers, one per user; skipped loudly without Chromium (a failure under CI=true)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        message = f"BROWSER TESTS SKIPPED: {', '.join(missing)} not installed"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    pair: list[Any] = []
    try:
        pair.extend([new_browser(), new_browser()])
        for browser in pair:
            browser.set_page_load_timeout(15)
        yield pair
    finally:
        for browser in pair:
            browser.quit()


@contextlib.contextmanager
def screenshots_on_failure(tmp_path: Path, browsers: list[Any]) -> Iterator[None]:
    """Save what each browser shows under ``tmp_path`` if the block fails."""
    try:
        yield
    except BaseException:
        for number, browser in enumerate(browsers):
            path = tmp_path / f"browser-{number}.png"
            browser.save_screenshot(str(path))
            print(f"screenshot of browser {number} ({browser.current_url}): {path}")
        raise


def wait_for(browser: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, TIMEOUT * 2).until(condition, f"waited for {what} at {browser.current_url}")


def text_of(browser: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, element_id).text


def open_page(browser: Any, url: str) -> None:
    """Load ``url`` and wait until its socket says it is connected."""
    browser.get(url)
    wait_for(browser, lambda b: text_of(b, "status") == "connected", "the socket to connect")


def open_in_both(site: Site, browsers: list[Any], path: str) -> None:
    """Open ``path`` in the first browser on the first server and in the second on the second."""
    for which, browser in enumerate(browsers):
        open_page(browser, site.http(which) + path)


def type_and_submit(browser: Any, input_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = browser.find_element(By.ID, input_id)
    field.send_keys(text)
    field.send_keys(Keys.ENTER)


def test_chat_page_in_two_browsers(site: Site, browsers: list[Any], tmp_path: Path) -> None:
    first, second = browsers
    with screenshots_on_failure(tmp_path, browsers):
        open_in_both(site, browsers, f"/chat/{unique('room')}/")
        me = text_of(first, "me")
        type_and_submit(first, "chat-message-input", "hello from the first browser")
        wait_for(second, lambda b: f"{me}: hello from the first browser" in text_of(b, "chat-log"), "the message")
        type_and_submit(second, "chat-message-input", "x" * 10)
        wait_for(first, lambda b: "xxxxxxxxxx" in text_of(b, "chat-log"), "the answer")


def test_table_page_in_two_browsers(site: Site, browsers: list[Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    first, second = browsers
    with screenshots_on_failure(tmp_path, browsers):
        open_in_both(site, browsers, f"/table/{unique('t')}/")
        first.find_element(By.CSS_SELECTOR, '[data-action="add"][data-dish="Margherita"]').click()
        wait_for(second, lambda b: "1 × Margherita" in text_of(b, "order"), "the first diner's dish")
        second.find_element(By.CSS_SELECTOR, '[data-action="add"][data-dish="Lemonade"]').click()
        wait_for(first, lambda b: "1 × Lemonade" in text_of(b, "order"), "the second diner's dish")
        second.refresh()  # a newcomer sees the order as it stands
        wait_for(second, lambda b: "1 × Margherita" in text_of(b, "order"), "the saved order")


def log_in_browser(browser: Any, base: str, username: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{base}/accounts/login/?next=/notifications/")
    browser.find_element(By.ID, "id_username").send_keys(username)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]").click()
    wait_for(browser, lambda b: text_of(b, "status") == "connected", "the notifications socket")


def test_notifications_page_in_two_browsers(site: Site, browsers: list[Any], tmp_path: Path) -> None:
    first, second = browsers
    text = unique("comment")
    with screenshots_on_failure(tmp_path, browsers):
        log_in_browser(first, site.http(0), "alice")
        log_in_browser(second, site.http(1), "bob")
        type_and_submit(first, "comment-input", text)
        wait_for(second, lambda b: f"alice: {text}" in text_of(b, "comments"), "alice's comment")
        wait_for(second, lambda b: text_of(b, "toast") == "New comment from alice", "the notification")
        wait_for(first, lambda b: text in text_of(b, "comments"), "alice's own comment")


def test_dashboard_page_in_two_browsers(site: Site, browsers: list[Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    first, second = browsers
    patient, reason = unique("patient"), unique("checkup")
    with screenshots_on_failure(tmp_path, browsers):
        open_in_both(site, browsers, "/dashboard/")
        type_and_submit(first, "patient-name", patient)
        wait_for(second, lambda b: patient in text_of(b, "patients"), "the new patient")
        Select(second.find_element(By.ID, "visit-patient")).select_by_visible_text(patient)
        type_and_submit(second, "visit-reason", reason)
        wait_for(first, lambda b: reason in text_of(b, "visits"), "the new visit")
        row = first.find_element(By.XPATH, f'//tbody[@id="visits"]/tr[td[text()="{reason}"]]')
        row.find_element(By.TAG_NAME, "button").click()
        wait_for(second, lambda b: reason not in text_of(b, "visits"), "the visit to end")


def test_echo_and_api_pages(one_site: Site, browsers: list[Any], tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser = browsers[0]
    with screenshots_on_failure(tmp_path, browsers[:1]):
        browser.get(f"{one_site.http()}/echo/")
        wait_for(browser, lambda b: text_of(b, "stamp-status") == "connected", "the timestamped echo")
        type_and_submit(browser, "plain-input", "plain words")
        wait_for(browser, lambda b: "plain words" in text_of(b, "plain-log"), "the plain echo")
        type_and_submit(browser, "stamp-input", "close")
        wait_for(browser, lambda b: text_of(b, "stamp-status") == "closed by the server", "the server to close")
        open_page(browser, f"{one_site.http()}/api/")
        browser.find_element(By.ID, "request-form").submit()
        wait_for(browser, lambda b: '"status":"OK"' in text_of(b, "answers"), "the answer")
