"""hubbub.logging.RedactTokens: token values leave log records, everything else stays."""

from __future__ import annotations

import io
import logging

import pytest

from hubbub.logging import RedactTokens, redact


@pytest.mark.parametrize(
    "text, expected",
    [
        ("/ws/feed/?token=s3cr3t", "/ws/feed/?token=[redacted]"),
        ("/ws/?room=1&token=a%2Bb&page=2", "/ws/?room=1&token=[redacted]&page=2"),
        ("/api/?access_token=abc;x=1", "/api/?access_token=[redacted];x=1"),
        ("/x/?TOKEN=abc#frag", "/x/?TOKEN=[redacted]#frag"),
        ("offered hubbub.token, hubbub.token.TVE6MXQ6eA", "offered hubbub.token, hubbub.token.[redacted]"),
        ("/ws/?tokens=1&broken=token", "/ws/?tokens=1&broken=token"),  # no parameter named *token
        ("/ws/chat/lobby/", "/ws/chat/lobby/"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


def log_through_filter(message: str, *args, formatter: logging.Formatter | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactTokens())
    if formatter is not None:
        handler.setFormatter(formatter)
    logger = logging.getLogger("hubbub.tests.redact")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        logger.info(message, *args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_arguments_are_redacted_and_keep_their_shape_for_uvicorns_access_formatter():
    from uvicorn.logging import AccessFormatter

    formatter = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    line = log_through_filter(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/x/?token=s3cr3t", "1.1", 200, formatter=formatter
    )
    assert line == '127.0.0.1:5000 - "GET /x/?token=[redacted] HTTP/1.1" 200 OK\n'


def test_a_template_naming_the_token_is_formatted_then_redacted():
    assert log_through_filter("connect ?token=%s from %s", "s3cr3t", "here") == "connect ?token=[redacted] from here\n"


def test_records_without_tokens_are_untouched():
    assert log_through_filter("%s joined %d rooms", "alice", 3) == "alice joined 3 rooms\n"
