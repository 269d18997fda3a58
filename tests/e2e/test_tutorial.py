"""docs/tutorial.md as printed: from ``django-admin startproject`` to two people chatting.

The test reads the tutorial's code blocks in order and does what they say, in a temporary
directory. A block after ``<!-- file: PATH -->`` is written as PATH, after ``<!-- append:
PATH -->`` added to its end, and after ``<!-- part of: PATH[, class NAME] -->`` its
definitions replace those of the same name in PATH (module level, or in class NAME), as a
reader pastes them; every Python file is compiled as soon as it is written. The lines of a
``sh`` block are run with bash where the reader runs them (following ``cd``), except:

* ``python -m venv`` and ``pip install``: checked, not run (the shared virtualenv has every
  package, and ``PYTHONPATH`` puts this checkout's ``hubbub`` first);
* ``python manage.py runserver`` and ``uvicorn``: the servers, started on a free port once the
  files of their part of the tutorial are written.

Up to the Redis step, the site runs on the in-memory layer under ``runserver`` (and ``pytest``
runs the tutorial's own test where the tutorial says to); the Redis step then runs two
uvicorn processes on the shared Redis, under a key prefix of their own.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.servers import ROOT, Process, free_port, wait_for_port

pytestmark = pytest.mark.timeout(120)

TUTORIAL = ROOT / "docs" / "tutorial.md"
WAIT = 10  # seconds: the most a reply may take on a loaded machine (waits end when it comes)

_BLOCK = re.compile(
    r"(?:<!-- (?P<action>file|append|part of): (?P<target>[^>]+?) -->\n)?"
    r"```(?P<lang>\w*)\n(?P<code>.*?)```",
    re.S,
)


@dataclass
class Block:
    action: str | None  # file, append, part of, or None
    target: str
    lang: str
    code: str


def tutorial_parts() -> tuple[list[Block], list[Block]]:
    """The tutorial's blocks before the Redis step (one process), and from it on."""
    text = TUTORIAL.read_text()
    redis_step = re.search(r"^## \d+\. .*Redis", text, re.M)
    assert redis_step, "docs/tutorial.md has no step about Redis"
    split = redis_step.start()
    return ([block(m) for m in _BLOCK.finditer(text, 0, split)], [block(m) for m in _BLOCK.finditer(text, split)])


def block(match: re.Match[str]) -> Block:
    return Block(match["action"], (match["target"] or "").strip(), match["lang"], match["code"])


# -- pasting part of a file: definitions replace those of the same name -----------------------


def defined_name(node: ast.stmt) -> str | None:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def first_line(node: ast.stmt) -> int:
    return min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])


def definitions(code: str) -> list[tuple[str, str]]:
    """``(name, source)`` of each statement of ``code``, all of which must be definitions."""
    lines = code.splitlines()
    found = []
    for node in ast.parse(code).body:
        name = defined_name(node)
        assert name, f"a 'part of' block holds only definitions, not: {lines[node.lineno - 1]!r}"
        found.append((name, "\n".join(lines[first_line(node) - 1 : node.end_lineno])))
    return found


def scope(source: str, cls: str | None) -> tuple[list[ast.stmt], str]:
    """The statements of the module or of class ``cls``, and their indentation."""
    tree = ast.parse(source)
    if cls is None:
        return tree.body, ""
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    assert classes, f"no class {cls} to paste into"
    return classes[0].body, " " * classes[0].body[0].col_offset


def paste(source: str, part: str, cls: str | None) -> str:
    """``source`` with ``part``'s definitions in place of its own; a new one goes before the next one pasted."""
    following = None
    for name, text in reversed(definitions(textwrap.dedent(part))):
        body, indent = scope(source, cls)
        named = {defined_name(node): node for node in body}
        lines = source.splitlines()
        new = textwrap.indent(text, indent).splitlines()
        if name in named:
            lines[first_line(named[name]) - 1 : named[name].end_lineno] = new
        elif following in named:
            at = first_line(named[following]) - 1
            lines[at:at] = new + [""]
        else:
            lines[body[-1].end_lineno : body[-1].end_lineno] = [""] + new
        source = "\n".join(lines) + "\n"
        following = name
    return source


# -- the reader: files and commands ------------------------------------------------------------


class Reader:
    """Does what the blocks say, from an empty directory; remembers the servers and installs."""

    def __init__(self, home: Path):
        self.cwd = home
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH") and not k.startswith("PYTEST")
        }
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["PYTHONPATH"] = str(ROOT)
        self.servers: list[list[str]] = []
        self.installs: list[str] = []

    def follow(self, blocks: list[Block]) -> None:
        for item in blocks:
            if item.action is not None:
                self.edit(item)
            elif item.lang == "sh":
                for line in item.code.splitlines():
                    self.command(line)

    def edit(self, item: Block) -> None:
        target, _, cls = item.target.partition(", class ")
        path = self.cwd / target
        if item.action == "file":
            path.parent.mkdir(parents=True, exist_ok=True)
            text = item.code
        elif item.action == "append":
            text = path.read_text() + "\n" + item.code
        else:
            text = paste(path.read_text(), item.code, cls or None)
        path.write_text(text)
        if path.suffix == ".py":
            compile(text, str(path), "exec")  # a block that is not valid Python fails here, named

    def command(self, line: str) -> None:
        words = shlex.split(line, comments=True)
        if not words:
            return
        if words[:3] == ["python", "-m", "venv"] or words[:2] == ["pip", "install"]:
            self.installs.append(line)
        elif words[:3] == ["python", "manage.py", "runserver"] or words[0] == "uvicorn":
            self.servers.append(words)
        else:
            self.run(line)

    def run(self, line: str) -> None:
        done = subprocess.run(
            ["bash", "-ec", f"{line}\npwd"], cwd=self.cwd, env=self.env, text=True, capture_output=True, timeout=90
        )
        assert done.returncode == 0, f"`{line}` failed in {self.cwd}:\n{done.stdout}\n{done.stderr}"
        self.cwd = Path(done.stdout.splitlines()[-1])


@asynccontextmanager
async def serving(reader: Reader, words: list[str]) -> AsyncIterator[str]:
    """One of the tutorial's servers on a free port of 127.0.0.1; yields its base URL.

    Its whole process group is stopped afterwards: runserver's autoreloader has a child.
    """
    port = free_port()
    if words[0] == "uvicorn":
        args = [*words[: words.index("--port") + 1], str(port), *words[words.index("--port") + 2 :]]
    else:
        args = [*words, f"127.0.0.1:{port}"]
    process = Process(args, reader.cwd, port=port)
    process.env = reader.env  # exactly the reader's environment: no DJANGO_SETTINGS_MODULE of this test run
    try:
        process.start(wait=False)
        try:
            await asyncio.to_thread(wait_for_port, port, 60, process.proc)  # checks and migrations first
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"`{shlex.join(words)}` did not start ({exc}):\n{process.output()}") from exc
        yield f"127.0.0.1:{port}"
    finally:
        if process.proc is not None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            await asyncio.to_thread(process.stop)
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


# -- two people chatting -----------------------------------------------------------------------


async def visitor(stack: AsyncExitStack, server: str, room: str) -> Any:
    """A browser: opens the room page (getting a session cookie), then the room's WebSocket."""
    async with httpx.AsyncClient(base_url=f"http://{server}", timeout=WAIT) as http:
        page = await http.get(f"/chat/{room}/")
        assert page.status_code == 200, page.text[:3000]
        assert f"Room {room}" in page.text and 'id="room-name"' in page.text
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    assert "sessionid=" in cookie, "the room page started no session"
    # A browser sends the page's Origin: the tutorial's chat route refuses any other (step 5).
    return await stack.enter_async_context(
        websockets.connect(
            f"ws://{server}/ws/chat/{room}/",
            additional_headers={"Cookie": cookie},
            origin=f"http://{server}",
            open_timeout=WAIT,
        )
    )


async def received(ws: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def chat(first: str, second: str) -> None:
    """Ann on ``first`` and Bob on ``second`` chat in the lobby; Eve in another room hears none of it."""
    async with AsyncExitStack() as stack:
        ann, bob, eve = (
            await visitor(stack, first, "lobby"),
            await visitor(stack, second, "lobby"),
            await visitor(stack, first, "other"),
        )
        await ann.send(json.dumps({"message": "hello"}))
        said = await received(ann)
        assert re.fullmatch(r"guest-\d{4}", said["user"]) and said == {"user": said["user"], "message": "hello"}
        assert await received(bob) == said
        await bob.send(json.dumps({"message": "  hi Ann "}))
        reply = await received(ann)
        assert reply["message"] == "hi Ann" and re.fullmatch(r"guest-\d{4}", reply["user"])
        assert await received(bob) == reply
        await bob.send("not json")  # step 6: an error for the sender only, the socket stays open
        assert await received(bob) == {"error": 'send {"message": "..."}'}
        await eve.send(json.dumps({"message": "anyone?"}))
        assert (await received(eve))["message"] == "anyone?"  # the first thing Eve hears is her own
        await ann.send(json.dumps({"message": "still there?"}))
        assert (await received(bob))["message"] == "still there?"


async def refused_from_another_site(server: str) -> None:
    """Step 5: another site's page, sending the visitor's cookie, is refused (403) before any chat."""
    async with httpx.AsyncClient(base_url=f"http://{server}", timeout=WAIT) as http:
        await http.get("/chat/lobby/")
        cookie = "; ".join(f"{name}={value}" for name, value in http.cookies.items())
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        await websockets.connect(
            f"ws://{server}/ws/chat/lobby/",
            additional_headers={"Cookie": cookie},
            origin="https://evil.example",
            open_timeout=WAIT,
        )
    assert refused.value.response.status_code == 403


async def echo(server: str) -> None:
    """Step 3's browser-console snippet: what is sent to /ws/echo/ comes back."""
    async with websockets.connect(f"ws://{server}/ws/echo/", open_timeout=WAIT) as ws:
        await ws.send("anyone there?")
        assert await asyncio.wait_for(ws.recv(), WAIT) == "anyone there?"


# -- the tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Reader:
    """The project after every step before Redis (``pytest`` has run the tutorial's test by then)."""
    reader = Reader(tmp_path_factory.mktemp("tutorial"))
    reader.follow(tutorial_parts()[0])
    return reader


def test_installing_from_a_checkout_names_an_extra_the_package_has(one_process):
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (install, *testing) = [line for line in one_process.installs if line.startswith("pip install")]
    assert re.match(r"pip install -e '[^' ]+\[redis\]'", install) and "redis" in extras
    assert testing and {"pytest", "pytest-django", "pytest-asyncio"} <= set(testing[0].split())


async def test_the_tutorial_site_chats_on_one_server_with_the_in_memory_layer(one_process):
    (runserver,) = one_process.servers
    assert runserver == ["python", "manage.py", "runserver"]
    assert (one_process.cwd / "db.sqlite3").exists(), "the tutorial never ran migrate"
    async with serving(one_process, runserver) as server:
        async with httpx.AsyncClient(base_url=f"http://{server}", timeout=WAIT) as http:
            lobby = await http.get("/chat/")
            assert lobby.status_code == 200 and 'name="room"' in lobby.text
            entered = await http.get("/chat/", params={"room": "lobby"})
            assert entered.status_code == 302 and entered.headers["location"] == "/chat/lobby/"
        await echo(server)
        await chat(server, server)
        await refused_from_another_site(server)


async def test_the_tutorial_site_chats_across_two_uvicorn_processes_on_redis(one_process, redis_url):
    prefix = "hubbubtut" + uuid.uuid4().hex[:10]
    steps = tutorial_parts()[1]
    for item in steps:
        if item.action == "append" and "RedisChannelLayer" in item.code:
            assert '"prefix": "mysite"' in item.code and "redis://127.0.0.1:6379/0" in item.code
            item.code = item.code.replace('"mysite"', f'"{prefix}"').replace("redis://127.0.0.1:6379/0", redis_url)
    one_process.servers.clear()
    one_process.follow(steps)
    assert len(one_process.servers) == 2 and all(words[0] == "uvicorn" for words in one_process.servers)
    try:
        async with (
            serving(one_process, one_process.servers[0]) as first,
            serving(one_process, one_process.servers[1]) as second,
        ):
            await chat(first, second)
    finally:
        from hubbub.layers.redis import RedisChannelLayer

        layer = RedisChannelLayer(hosts=[redis_url], prefix=prefix)
        await layer.flush()
        await layer.close_pools()
