"""JSON-RPC 2.0 codec: request validation, responses, error-code mapping (pure, no server)."""

from __future__ import annotations

import pytest

from icpy_kernels import errors
from icpy_kernels.protocol import jsonrpc
from icpy_kernels.protocol.jsonrpc import Rejected, Request, parse_request


def test_valid_request_and_notification():
    r = parse_request({"jsonrpc": "2.0", "method": "m", "params": {"a": 1}, "id": 7})
    assert r == Request("m", {"a": 1}, 7, notification=False)
    n = parse_request({"jsonrpc": "2.0", "method": "m"})
    assert n.notification is True and n.params == {} and n.id is None
    # An explicit null id is a request (answered with id null), not a notification.
    assert parse_request({"jsonrpc": "2.0", "method": "m", "id": None}).notification is False
    assert parse_request({"jsonrpc": "2.0", "method": "m", "params": [1], "id": "x"}).params == [1]


@pytest.mark.parametrize(
    ("entry", "reply_id", "needle"),
    [
        (1, None, "expected an object"),
        ("text", None, "expected an object"),
        ({"method": "m", "id": 1}, 1, "'jsonrpc'"),
        ({"jsonrpc": "1.0", "method": "m", "id": 2}, 2, "'jsonrpc'"),
        ({"jsonrpc": "2.0", "id": 3}, 3, "'method'"),
        ({"jsonrpc": "2.0", "method": 5, "id": 4}, 4, "'method'"),
        ({"jsonrpc": "2.0", "method": "m", "params": "x", "id": 5}, 5, "'params'"),
        ({"jsonrpc": "2.0", "method": "m", "id": {"no": 1}}, None, "'id'"),
        ({"jsonrpc": "2.0", "method": "m", "id": True}, None, "'id'"),
    ],
)
def test_invalid_requests(entry, reply_id, needle):
    with pytest.raises(Rejected) as caught:
        parse_request(entry)
    response = caught.value.response
    assert response["jsonrpc"] == "2.0"
    assert response["id"] == reply_id
    assert response["error"]["code"] == -32600
    assert needle in response["error"]["message"]
    assert "result" not in response


def test_parse_error():
    with pytest.raises(Rejected) as caught:
        jsonrpc.decode('{"jsonrpc": "2.0", "method"')
    assert caught.value.response["error"]["code"] == -32700
    assert caught.value.response["id"] is None
    assert jsonrpc.decode("[1]") == [1]


def test_a_frame_nested_too_deep_is_a_parse_error():
    deep = '{"jsonrpc": "2.0", "id": 1, "method": "m", "params": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(Rejected) as caught:
        jsonrpc.decode(deep)
    assert caught.value.response["error"]["code"] == -32700 and caught.value.response["id"] is None
    assert "nested too deeply" in caught.value.response["error"]["message"]


def test_is_jsonrpc_and_wrapped():
    assert jsonrpc.is_jsonrpc({"jsonrpc": "2.0"})
    assert jsonrpc.is_jsonrpc([])
    assert jsonrpc.is_jsonrpc([1, {"jsonrpc": "2.0"}])
    assert not jsonrpc.is_jsonrpc([1, 2])
    assert not jsonrpc.is_jsonrpc({"type": "execute"})
    assert jsonrpc.is_wrapped({"type": "jsonrpc", "request": {}})
    assert not jsonrpc.is_wrapped({"type": "execute"})
    wrapped = jsonrpc.wrap_response({"jsonrpc": "2.0", "id": 1, "result": 2})
    assert wrapped["type"] == "jsonrpc_response" and wrapped["response"]["result"] == 2
    assert wrapped["timestamp"].endswith("Z")
    note = jsonrpc.wrap_notification(jsonrpc.notification("execute.update", {"seq": 1}))
    assert note["type"] == "jsonrpc_notification"
    assert note["notification"] == {"jsonrpc": "2.0", "method": "execute.update", "params": {"seq": 1}}


def test_named_params():
    assert jsonrpc.named_params(Request("m", [], 1)) == {}
    with pytest.raises(errors.ValidationError) as caught:
        jsonrpc.named_params(Request("m", [1], 1))
    assert caught.value.field == "params"


def test_responses():
    assert jsonrpc.result(1, {"x": 1}) == {"jsonrpc": "2.0", "id": 1, "result": {"x": 1}}
    assert jsonrpc.error("a", -32603, "boom") == {
        "jsonrpc": "2.0", "id": "a", "error": {"code": -32603, "message": "boom"}}
    nf = jsonrpc.method_not_found(3, "nope.nope", ["b", "a"])
    assert nf["error"]["code"] == -32601
    assert "nope.nope" in nf["error"]["message"]
    assert nf["error"]["data"] == {"code": "method_not_found", "method": "nope.nope", "known": ["a", "b"]}


def test_validation_error_is_invalid_params_naming_the_field():
    exc = errors.ValidationError("'code' must be a string", field="code", execution_id="e1")
    response = jsonrpc.from_exception(9, exc)
    assert response["id"] == 9
    assert response["error"]["code"] == -32602
    assert "'code'" in response["error"]["message"]
    assert response["error"]["data"] == {
        "code": "validation_error", "message": "'code' must be a string", "field": "code",
        "execution_id": "e1"}


def test_every_error_class_maps_once_and_server_errors_are_in_the_reserved_range():
    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.IcpyError)]
    for cls in classes:
        assert cls in jsonrpc.ERROR_CODES or any(b in jsonrpc.ERROR_CODES for b in cls.__mro__[1:])
    server = {c: code for c, code in jsonrpc.ERROR_CODES.items() if -32099 <= code <= -32000}
    assert len(set(server.values())) == len(server), "two classes share a server error code"
    assert jsonrpc.error_code(errors.SessionNotFound("x")) == -32002
    assert jsonrpc.error_code(errors.CapacityError("x")) == -32005
    assert jsonrpc.error_code(errors.ForbiddenError("x")) == -32008
    assert jsonrpc.error_code(errors.InvalidJSON("x")) == -32700
    # A subclass added later inherits its parent's code.
    class Later(errors.SessionNotFound):
        pass
    assert jsonrpc.error_code(Later("x")) == -32002
    data = jsonrpc.from_exception(None, errors.UnknownLanguage("cobol", ["python"]))["error"]
    assert data["code"] == -32001
    assert data["data"]["code"] == "unknown_language" and data["data"]["available"] == ["python"]
