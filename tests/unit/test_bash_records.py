"""The Bash kernel's control-pipe records (script.py writes them, records.py reads them)."""

from __future__ import annotations

import pytest

from icpy_kernels.kernels.bash.records import (
    Done,
    InputRequest,
    Result,
    parse_record,
    split_records,
)


def test_complete_records_are_split_and_the_unterminated_tail_is_kept():
    assert split_records(b"D1:0\0R2:ls\0I3:0:na") == (["D1:0", "R2:ls"], b"I3:0:na")
    assert split_records(b"") == ([], b"")
    assert split_records(b"D1:0\0") == (["D1:0"], b"")


def test_a_character_split_between_reads_is_decoded_once_whole():
    data = "R4:café\0".encode()
    cut = data.index(b"\xa9")  # inside the two-byte é
    records, rest = split_records(data[:cut])
    assert records == [] and rest == data[:cut]
    assert split_records(rest + data[cut:]) == (["R4:café"], b"")


def test_invalid_utf8_is_replaced_not_fatal():
    assert split_records(b"R1:\xff\0") == (["R1:\ufffd"], b"")


@pytest.mark.parametrize(("text", "record"), [
    ("D7:0", Done(7, 0)),
    ("D7:130", Done(7, 130)),
    ("D7:-1", Done(7, -1)),
    ("D7:", Done(7, 1)),  # a status that is not a number counts as failure
    ("D7:x", Done(7, 1)),
    ("D7:²", Done(7, 1)),
    ("R3:", Result(3, "")),
    ("R3:echo\nenv\n", Result(3, "echo\nenv\n")),
    ("R3:a:b", Result(3, "a:b")),  # only the first colon separates
    ("I5:0:Name? ", InputRequest(5, False, "Name? ")),
    ("I5:1:pass: ", InputRequest(5, True, "pass: ")),
    ("I5:0:", InputRequest(5, False, "")),
])
def test_known_records(text, record):
    assert parse_record(text) == record


@pytest.mark.parametrize("text", ["", "D", "Dx:0", "D:0", "X1:0", "d1:0", "R:text"])
def test_unknown_or_malformed_records_are_ignored(text):
    assert parse_record(text) is None
