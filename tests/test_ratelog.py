"""hubbub.ratelog: a repeated problem is logged once per interval, with the count left out."""

from __future__ import annotations

import logging

import pytest

from hubbub.ratelog import RateLimitedLog


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_one_key_writes_one_line_per_interval_and_counts_the_rest(caplog):
    clock = FakeClock()
    log = RateLimitedLog(logging.getLogger("hubbub.test.ratelog"), logging.WARNING, interval=10, clock=clock)
    with caplog.at_level(logging.WARNING, logger="hubbub.test.ratelog"):
        written = [log.log("room", "group %s is full", "room") for _ in range(1000)]
        clock.now += 10
        log.log("room", "group %s is full", "room")
    assert written.count(True) == 1
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["group room is full", "group room is full (and 999 more like it since the last such line)"]


def test_different_keys_are_logged_independently(caplog):
    log = RateLimitedLog(logging.getLogger("hubbub.test.ratelog"), logging.INFO, interval=60, clock=FakeClock())
    with caplog.at_level(logging.INFO, logger="hubbub.test.ratelog"):
        assert log.log("a", "one") and log.log("b", "two")
        assert not log.log("a", "one")
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.INFO]


def test_memory_is_bounded_by_max_keys_oldest_forgotten_first():
    clock = FakeClock()
    log = RateLimitedLog(logging.getLogger("hubbub.test.ratelog"), interval=60, max_keys=3, clock=clock)
    for key in "abcd":
        log.log(key, "x")
    assert log.log("a", "x"), "the oldest key was forgotten, so it is logged again"
    assert not log.log("d", "x")


def test_bad_settings_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="interval"):
        RateLimitedLog(logging.getLogger("x"), interval=-1)
    with pytest.raises(ValueError, match="max_keys"):
        RateLimitedLog(logging.getLogger("x"), max_keys=0)
