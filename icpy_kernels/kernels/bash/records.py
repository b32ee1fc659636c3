"""The control pipe's records (bash -> kernel), parsed without I/O: see script.py for the writer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Done:
    """`D<seq>:<status>`: command line `seq` finished with `$?` = status."""

    seq: int
    status: int


@dataclass(frozen=True)
class Result:
    """`R<seq>:<text>`: the answer to query `seq` (compgen, type, help)."""

    seq: int
    text: str


@dataclass(frozen=True)
class InputRequest:
    """`I<seq>:<secret>:<prompt>`: a `read` in line `seq` wants a line from the front end."""

    seq: int
    password: bool
    prompt: str


Record = Done | Result | InputRequest


def split_records(buffer: bytes) -> tuple[list[str], bytes]:
    """Complete NUL-terminated records in `buffer`, decoded, and the unterminated rest.

    A read may end mid-record (or mid-character): the rest waits for the next read.
    """
    *records, rest = buffer.split(b"\0")
    return [raw.decode("utf-8", "replace") for raw in records], rest


def parse_record(record: str) -> Record | None:
    """One record, or None for one the kernel does not understand (it is then ignored)."""
    kind, body = record[:1], record[1:]
    seq_text, _, rest = body.partition(":")
    try:
        seq = int(seq_text)
    except ValueError:
        return None
    if kind == "D":
        # A status bash could not have written counts as failure rather than crashing a reader.
        status = int(rest) if rest.lstrip("-").isdecimal() else 1
        return Done(seq, status)
    if kind == "R":
        return Result(seq, rest)
    if kind == "I":
        secret, _, prompt = rest.partition(":")
        return InputRequest(seq, secret == "1", prompt)
    return None
