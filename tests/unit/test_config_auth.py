"""Settings loading, token and origin checks (pure)."""

from __future__ import annotations

import argparse
import logging

import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest

from icpy_kernels.config import Settings, add_arguments, load_settings
from icpy_kernels.errors import AuthError, ForbiddenError
from icpy_kernels.server.auth import Origins, authenticate
from icpy_kernels.server.logs import Throttled, redact


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_beat_env_beat_defaults():
    s = load_settings(parse("--port", "9000"), {"ICPY_PORT": "1", "ICPY_MAX_TIMEOUT": "5", "ICPY_ALLOW_ORIGIN": "a, b"})
    assert s.port == 9000 and s.max_timeout == 5.0 and s.allow_origin == ["a", "b"]
    assert s.host == "127.0.0.1"


def test_a_commands_own_defaults_lose_to_env_and_flags():
    # The CLI's local runs: unsandboxed unless ICPY_SANDBOX (set and non-empty) or a flag says so.
    cli = {"sandbox": "off"}
    assert load_settings(None, {}, defaults=cli).sandbox == "off"
    assert load_settings(None, {"ICPY_SANDBOX": ""}, defaults=cli).sandbox == "off"
    assert load_settings(None, {"ICPY_SANDBOX": "auto"}, defaults=cli).sandbox == "auto"
    assert load_settings(parse("--sandbox", "require"), {}, defaults=cli).sandbox == "require"
    assert load_settings(None, {}).sandbox == "auto"


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


def origins(*allow: str, host: str = "127.0.0.1") -> Origins:
    return Origins.of(Settings(token="t", host=host, allow_origin=list(allow)))


def test_origin_rules():
    default = origins()
    assert default.origin_allowed(None, 8765)  # not a browser
    for page in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765",
                 "https://localhost:8765", "HTTP://LOCALHOST:8765/"):
        assert default.origin_allowed(page, 8765), page
    assert not default.origin_allowed("http://evil.example", 8765)
    assert not default.origin_allowed("http://127.0.0.1:9999", 8765)  # another local server's page
    assert not default.origin_allowed("http://localhost", 8765)
    assert not default.origin_allowed("null", 8765)
    assert not default.origin_allowed("http://127.0.0.1:8765", None)
    listed = origins("http://ide.example", "https://x.example:3000")
    assert listed.origin_allowed("http://ide.example", 8765) and listed.origin_allowed("http://ide.example:80", 1)
    assert listed.origin_allowed("https://x.example:3000", 8765)
    assert not listed.origin_allowed("http://x.example:3000", 8765)  # scheme and port are part of it
    assert origins("*").origin_allowed("http://anything", 8765)


def test_origin_is_checked_against_the_servers_names_not_the_host_header():
    """DNS rebinding: evil.example resolves to 127.0.0.1; its page sends an Origin and a Host
    that agree with each other. Neither is one of this server's names."""
    default = origins()
    assert not default.origin_allowed("http://evil.example:8765", 8765)
    assert not default.host_allowed("evil.example:8765")
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "localhost", "10.1.2.3:8765", "[fe80::1]"):
        assert default.host_allowed(host), host  # an IP address cannot be rebound
    # Bound to every address, reached by a name: the name must be listed.
    public = origins("http://build-box.lan:8765", host="0.0.0.0")
    assert public.host_allowed("build-box.lan:8765") and public.origin_allowed("http://build-box.lan:8765", 8765)
    assert not public.host_allowed("evil.example:8765")
    assert origins(host="build-box.lan").host_allowed("BUILD-BOX.lan:8765")
    assert origins("*").host_allowed("evil.example")


def test_query_tokens_are_redacted():
    assert redact("/ws?token=s3cret") == "/ws?token=[redacted]"
    assert redact("/api/x?a=1&token=s3cret&b=2") == "/api/x?a=1&token=[redacted]&b=2"
    assert redact("/api/x?TOKEN=s3cret;token=again") == "/api/x?TOKEN=[redacted];token=[redacted]"
    assert redact("/api/tokens?mytoken=keep") == "/api/tokens?mytoken=keep"


def test_throttled_logs_once_per_interval(caplog):
    throttled = Throttled(logging.getLogger("icpy-test-throttle"), interval=60)
    with caplog.at_level(logging.WARNING, "icpy-test-throttle"):
        for _ in range(1000):
            throttled.warning("accept", "accept failed")
        throttled.warning("other", "other kind")
    assert [r.getMessage() for r in caplog.records] == ["accept failed", "other kind"]
