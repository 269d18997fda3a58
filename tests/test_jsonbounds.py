"""Bounds on decoding a client's JSON frame: nesting depth and size, checked before json.loads."""

from __future__ import annotations

import json
import time

import pytest

from hubbub.exceptions import InvalidFrame
from hubbub.jsonbounds import MAX_JSON_DEPTH, check_json_frame, nesting_exceeds


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [0, 1, 5, 127, 128])
def test_nesting_up_to_the_limit_passes(depth):
    assert not nesting_exceeds(nested(depth), 128)


@pytest.mark.parametrize("depth", [129, 130, 500, 2000, 100_000])
def test_nesting_past_the_limit_is_found(depth):
    assert nesting_exceeds(nested(depth), 128)


def test_unclosed_brackets_count_as_nesting():
    """ "[" * 2000 alone makes json.loads raise RecursionError: it must be refused as too deep."""
    assert nesting_exceeds("[" * 2000, MAX_JSON_DEPTH)
    with pytest.raises(RecursionError):
        json.loads("[" * 2000)


def test_many_brackets_side_by_side_are_not_nesting():
    assert not nesting_exceeds(json.dumps([[1, [2]], {"a": [3]}] * 5000), 128)
    wide = "[" + ",".join([nested(127)] * 50) + "]"  # 128 deep, many times over
    assert not nesting_exceeds(wide, 128)
    assert nesting_exceeds("[" + ",".join([nested(128)] * 50) + "]", 128)


def test_brackets_inside_strings_do_not_nest_and_escapes_do_not_fool_the_scan():
    assert not nesting_exceeds(json.dumps({"text": "[" * 5000, 'quote"[[': "\\" + "{" * 300}), 128)
    hidden = json.loads(nested(130))
    # Closing brackets inside strings must not cancel the real nesting around them.
    assert nesting_exceeds(json.dumps([hidden, "]]]]", '\\"]]]', "\\\\"]), 128)


def test_objects_and_arrays_nest_together():
    value: object = 1
    for n in range(130):
        value = {"k": value} if n % 2 else [value]
    assert nesting_exceeds(json.dumps(value), 128)
    assert not nesting_exceeds(json.dumps(value), 130)


@pytest.mark.parametrize(
    "text",
    [
        "[" + ",".join(["[]"] * 300_000) + "]",  # ~1 MiB of pairs
        "[" * 200 + '"\\"' * 300_000,  # ~1 MiB of escaped quotes in an unclosed string
        "[" + ",".join([nested(127)] * 4000) + "]",  # ~1 MiB, 128 deep everywhere: the slowest shape
    ],
)
def test_the_scan_of_a_1_mib_hostile_frame_is_bounded(text):
    """Linear, C-speed work: well under a second even on a loaded machine (measured 5-110 ms)."""
    started = time.perf_counter()
    nesting_exceeds(text, 128)
    assert time.perf_counter() - started < 2.0


def test_check_json_frame_refuses_size_with_1009_and_depth_with_1007():
    with pytest.raises(InvalidFrame) as too_big:
        check_json_frame("é" * 600, 1000, 128)  # 600 characters, 1,200 bytes
    assert too_big.value.code == 1009 and too_big.value.reason == "frame over 1000 bytes"
    with pytest.raises(InvalidFrame) as too_deep:
        check_json_frame(nested(200), 1000, 128)
    assert too_deep.value.code == 1007 and too_deep.value.reason == "JSON nested more than 128 deep"
    check_json_frame("x" * 1000, 1000, 128)  # exactly at the size limit
    check_json_frame(nested(200), None, None)  # both bounds off
