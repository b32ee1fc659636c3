"""resolve_inside: a working directory is walked inside the workspace, never through the host."""

from __future__ import annotations

import os

import pytest

from icpy_kernels.provisioning.workspace import MAX_SYMLINKS, resolve_inside


@pytest.fixture
def ws(tmp_path):
    ws = tmp_path / "ws"
    (ws / "sub" / "deeper").mkdir(parents=True)
    return ws


def refused(ws, requested: str) -> str:
    with pytest.raises(ValueError) as err:
        resolve_inside(ws, requested)
    return str(err.value)


def test_plain_paths_are_the_absolute_path_inside(ws):
    assert resolve_inside(ws, "sub") == str(ws / "sub")
    assert resolve_inside(ws, "./sub//deeper/") == str(ws / "sub" / "deeper")
    assert resolve_inside(ws, "sub/deeper/..") == str(ws / "sub")
    assert resolve_inside(ws, ".") == str(ws)
    assert resolve_inside(ws, str(ws / "sub")) == str(ws / "sub")  # absolute, inside
    # Missing components are the kernel's to report ("does not exist").
    assert resolve_inside(ws, "nope/x") == str(ws / "nope" / "x")


def test_a_relative_symlink_inside_is_followed(ws):
    (ws / "sub" / "up").symlink_to("..")
    (ws / "to-deeper").symlink_to("sub/deeper")
    assert resolve_inside(ws, "to-deeper") == str(ws / "sub" / "deeper")
    assert resolve_inside(ws, "sub/up/sub") == str(ws / "sub")


def test_an_absolute_symlink_is_refused_without_naming_its_target(ws, tmp_path):
    secret = tmp_path / "server-secret-dir"
    secret.mkdir()
    (ws / "link").symlink_to(secret)
    (ws / "etc").symlink_to("/etc")
    for name in ("link", "etc", "sub/../link/x"):
        message = refused(ws, name)
        assert repr(name) in message and "workspace" in message
        assert str(secret) not in message and "/etc" not in message


def test_climbing_out_is_refused_by_dots_or_by_a_relative_link(ws, tmp_path):
    (tmp_path / "outside").mkdir()
    (ws / "sub" / "climb").symlink_to("../../outside")
    for bad in ("..", "../", "sub/../../x", "sub/climb", "/etc", str(tmp_path / "outside")):
        message = refused(ws, bad)
        assert str(tmp_path / "outside") not in message.replace(repr(bad), "")


def test_a_loop_and_a_long_chain_are_refused_as_too_many_links(ws):
    (ws / "a").symlink_to("b")
    (ws / "b").symlink_to("a")
    assert "too many levels of symbolic links" in refused(ws, "a")
    # MAX_SYMLINKS + 1 links, link0 -> link1 -> ... -> sub; one fewer resolves.
    (ws / f"link{MAX_SYMLINKS + 1}").symlink_to("sub")
    for i in range(MAX_SYMLINKS, 0, -1):
        (ws / f"link{i}").symlink_to(f"link{i + 1}")
    assert resolve_inside(ws, "link2") == str(ws / "sub")
    assert "too many levels" in refused(ws, "link1")


def test_proc_self_cwd_does_not_reveal_the_servers_cwd(ws):
    (ws / "me").symlink_to("/proc/self/cwd")
    (ws / "fd").symlink_to("/proc/self/fd/0")
    for name in ("me", "fd"):
        message = refused(ws, name)
        assert os.getcwd() not in message and "/proc" not in message
