"""Code blocks of a document, so tests run what the docs show rather than a copy of it."""

from __future__ import annotations

import re

from tests.servers import ROOT

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


def section(document: str, heading: str) -> str:
    """The text of ``docs/<document>`` from the heading ``heading`` to the next heading of its level."""
    lines = (ROOT / "docs" / document).read_text().splitlines(keepends=True)
    start, level, in_fence = None, 0, False
    for number, line in enumerate(lines):
        if line.startswith("```"):
            in_fence = not in_fence
            continue
        marks = re.match(r"(#+) (.*)", line)
        if in_fence or marks is None:
            continue
        if start is None and marks.group(2).strip() == heading:
            start, level = number + 1, len(marks.group(1))
        elif start is not None and len(marks.group(1)) <= level:
            return "".join(lines[start:number])
    if start is None:
        raise LookupError(f"docs/{document} has no heading {heading!r}")
    return "".join(lines[start:])


def blocks(document: str, heading: str, language: str, containing: str | None = None) -> list[str]:
    """The ``language`` code blocks under ``heading`` in ``docs/<document>`` (those containing ``containing``)."""
    found = [body for lang, body in _FENCE.findall(section(document, heading)) if lang == language]
    if containing is not None:
        found = [body for body in found if containing in body]
    if not found:
        raise LookupError(f"no {language} block{' with ' + repr(containing) if containing else ''} under {heading!r}")
    return found


def block(document: str, heading: str, language: str, containing: str | None = None) -> str:
    """The first matching block (see ``blocks``)."""
    return blocks(document, heading, language, containing)[0]
