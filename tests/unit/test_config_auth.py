"""Settings loading, token and origin checks (pure)."""

from __future__ import annotations

import argparse

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest

from icpy_kernels.config import Settings, add_arguments, load_settings
from icpy_kernels.errors import AuthError, ForbiddenError
from icpy_kernels.server.auth import authenticate, origin_allowed


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_beat_env_beat_defaults():
    s = load_settings(parse("--port", "9000"), {"ICPY_PORT": "1", "ICPY_MAX_TIMEOUT": "5", "ICPY_ALLOW_ORIGIN": "a, b"})
    assert s.port == 9000 and s.max_timeout == 5.0 and s.allow_origin == ["a", "b"]
    assert s.host == "127.0.0.1"


def test_token_is_generated_when_missing():
    a, b = Settings(), Settings()
    assert a.token_generated and len(a.token) >= 32 and a.token != b.token
    assert Settings(token="t").token_generated is False


def test_bad_env_value_is_a_clear_exit():
    with pytest.raises(SystemExit, match="ICPY_PORT"):
        load_settings(None, {"ICPY_PORT": "eighty"})


def test_language_overrides():
    assert Settings(language=["Ruby = ruby3", "bad"]).language_overrides == {"ruby": "ruby3"}


def request(uri="/ws", headers=None):
    from tornado.httputil import RequestStartLine

    return HTTPServerRequest(headers=HTTPHeaders({"Host": "127.0.0.1", **(headers or {})}),
                             start_line=RequestStartLine("GET", uri, "HTTP/1.1"))


def test_token_sources_and_refusals():
    authenticate(request("/ws?token=sekret"), "sekret")
    authenticate(request(headers={"Authorization": "Bearer sekret"}), "sekret")
    authenticate(request(headers={"Authorization": "token sekret"}), "sekret")
    with pytest.raises(AuthError) as missing:
        authenticate(request(), "sekret")
    assert missing.value.http_status == 401
    with pytest.raises(ForbiddenError) as wrong:
        authenticate(request("/ws?token=nope"), "sekret")
    assert wrong.value.http_status == 403


def test_origin_rules():
    assert origin_allowed(None, "127.0.0.1:8765", [])
    assert origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765", [])
    assert not origin_allowed("http://evil.example", "127.0.0.1:8765", [])
    assert not origin_allowed("http://127.0.0.1:9999", "127.0.0.1:8765", [])
    assert origin_allowed("http://ide.example", "127.0.0.1:8765", ["http://ide.example"])
    assert origin_allowed("http://anything", "h", ["*"])
