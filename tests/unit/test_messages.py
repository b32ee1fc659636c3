"""Client message validation (pure)."""

from __future__ import annotations

import json
import uuid

import pytest

from icpy_kernels.errors import InvalidJSON, ValidationError
from icpy_kernels.protocol.messages import decode_json, parse_execute, parse_frame

LIMITS = {"default_timeout": 30.0, "max_timeout": 600.0, "max_output_size": 1000}


def execute(**fields):
    return parse_execute({"type": "execute", **fields}, **LIMITS)


@pytest.mark.parametrize("frame", ["", "{", "null", "[1]", '"text"', b"\xff\xfe", "12"])
def test_frames_that_are_not_objects_are_invalid_json(frame):
    with pytest.raises(InvalidJSON):
        parse_frame(frame)


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text", [DEEP, '{"type": "ping", "x": ' + DEEP + "}", DEEP.encode(),
                                  bytearray(b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}")])
def test_json_nested_too_deep_is_invalid_json_not_a_recursion_error(text):
    with pytest.raises(InvalidJSON, match="nested too deeply"):
        decode_json(text)
    with pytest.raises(InvalidJSON):
        parse_frame(text)


@pytest.mark.parametrize("text", ["", "{", b"\xff\xfe", "\ud800", "[1,]", "NaN!"])
def test_decode_json_names_what_was_sent(text):
    with pytest.raises(InvalidJSON, match="^Body is not valid JSON"):
        decode_json(text, "Body")


def test_decode_json_returns_any_json_value():
    assert decode_json("[1]") == [1] and decode_json(b'{"a": null}') == {"a": None}
    nested = "[" * 200 + "]" * 200  # well under the limit: parsed
    assert decode_json(nested)


def test_defaults():
    req = execute(code="1")
    assert req.language == "python"
    assert uuid.UUID(req.execution_id).version == 4 and not req.client_execution_id
    assert req.session_id is None
    assert req.config.timeout == 30.0 and req.config.max_output_size == 1000
    assert req.config.environment == {} and req.config.working_directory is None
    assert req.config.allow_stdin is False


def test_client_values_are_kept_and_capped():
    req = execute(code="1", language="js", execution_id="e-1", session_id="s.1",
                  config={"timeout": 10_000, "max_output_size": 10, "working_directory": "/tmp",
                          "environment": {"A_1": "x'\n\""}, "allow_stdin": True})
    assert (req.language, req.execution_id, req.session_id) == ("js", "e-1", "s.1")
    assert req.client_execution_id
    assert req.config.timeout == 600.0  # capped at max_timeout
    assert req.config.max_output_size == 10
    assert req.config.environment == {"A_1": "x'\n\""}
    assert req.config.allow_stdin is True


@pytest.mark.parametrize(
    "fields, field",
    [
        ({}, "code"),
        ({"code": ""}, "code"),
        ({"code": 3}, "code"),
        ({"code": "1", "language": 5}, "language"),
        ({"code": "1", "execution_id": 5}, "execution_id"),
        ({"code": "1", "execution_id": "has space"}, "execution_id"),
        ({"code": "1", "execution_id": "e1\n"}, "execution_id"),  # `$` matches before a final newline
        ({"code": "1", "session_id": "x" * 200}, "session_id"),
        ({"code": "1", "config": "fast"}, "config"),
        ({"code": "1", "config": {"timeout": 0}}, "config.timeout"),
        ({"code": "1", "config": {"timeout": True}}, "config.timeout"),
        ({"code": "1", "config": {"timeout": float("nan")}}, "config.timeout"),
        ({"code": "1", "config": {"max_output_size": -5}}, "config.max_output_size"),
        ({"code": "1", "config": {"working_directory": 7}}, "config.working_directory"),
        ({"code": "1", "config": {"working_directory": ""}}, "config.working_directory"),
        ({"code": "1", "config": {"working_directory": "d/" * 2048 + "x"}}, "config.working_directory"),
        ({"code": "1", "config": {"environment": {"A": 1}}}, "config.environment"),
        ({"code": "1", "config": {"environment": {"1A": "x"}}}, "config.environment"),
        ({"code": "1", "config": {"environment": {"A=B": "x"}}}, "config.environment"),
        ({"code": "1", "config": {"environment": {"A\n": "x"}}}, "config.environment"),
        ({"code": "1", "config": {"environment": {"A": "nul\0"}}}, "config.environment"),
        ({"code": "1", "config": {"allow_stdin": "yes"}}, "config.allow_stdin"),
    ],
)
def test_bad_fields_name_the_field(fields, field):
    with pytest.raises(ValidationError) as err:
        execute(**fields)
    assert err.value.field == field
    assert err.value.to_dict()["code"] == "validation_error"


def test_working_directory_is_capped_at_4096_bytes_not_characters():
    assert execute(code="1", config={"working_directory": "é" * 2048}).config.working_directory
    with pytest.raises(ValidationError) as err:
        execute(code="1", config={"working_directory": "é" * 2048 + "x"})
    assert err.value.field == "config.working_directory" and "4096 bytes" in str(err.value)


def test_missing_code_message_is_the_documented_one():
    with pytest.raises(ValidationError) as err:
        execute()
    assert err.value.message == "No code provided for execution"


def test_encoded_frames_are_json_whatever_their_shape():
    """A batch's answers are a list: the shared-head encoding of events must not bend it."""
    from icpy_kernels.protocol import events

    batch = [{"jsonrpc": "2.0", "id": 1, "result": {}}, {"jsonrpc": "2.0", "id": None, "error": {}}]
    assert json.loads(events.encode(batch)) == batch
    event = {"type": "execution_result", "output": ["x" * (2 << 20)]}
    assert json.loads(events.encode(event)) == event
    reply = events.Reply(event, {"request_id": "r1"})
    assert json.loads(events.encode(reply)) == {**event, "request_id": "r1"}
