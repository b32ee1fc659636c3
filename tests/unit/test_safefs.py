"""Privileged file operations never act through a symlink a kernel planted (as root: real
chowns to an unused uid; as another user, the ownership checks are skipped)."""

from __future__ import annotations

import os

import pytest

from icpy_kernels.provisioning import safefs

ROOT = os.geteuid() == 0
STRANGER = 3_009_999  # a uid nobody uses


@pytest.fixture
def victim(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "shadow"
    target.write_text("root only")
    return target


def owner(path) -> int:
    return os.lstat(path).st_uid


@pytest.mark.skipif(not ROOT, reason="chown to another uid needs root")
def test_chown_tree_changes_links_not_their_targets(tmp_path, victim):
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "file").write_text("x")
    (ws / "link").symlink_to(victim)
    (ws / "dirlink").symlink_to(victim.parent)
    fd = safefs.open_dir(ws)
    try:
        safefs.chown_tree(fd, STRANGER, STRANGER, top_mode=0o700)
    finally:
        os.close(fd)
    assert {owner(ws), owner(ws / "sub"), owner(ws / "sub" / "file"), owner(ws / "link")} == {STRANGER}
    assert owner(victim) == 0 and owner(victim.parent) == 0
    assert oct(os.stat(ws).st_mode & 0o777) == oct(0o700)


def test_make_dir_refuses_a_symlink_or_a_strangers_directory(tmp_path, victim):
    (tmp_path / "planted").symlink_to(victim.parent)
    with pytest.raises(PermissionError):
        safefs.make_dir(tmp_path, "planted")
    fd = safefs.make_dir(tmp_path, "fresh", mode=0o700)
    os.close(fd)
    assert (tmp_path / "fresh").is_dir()
    if ROOT:
        os.chown(tmp_path / "fresh", STRANGER, STRANGER)
        with pytest.raises(PermissionError):
            safefs.make_dir(tmp_path, "fresh")
        os.close(safefs.make_dir(tmp_path, "fresh", owners=[STRANGER]))
    with pytest.raises(ValueError):
        safefs.make_dir(tmp_path, "../escape")


def test_seal_file_refuses_a_symlink(tmp_path, victim):
    (tmp_path / "conn.json").symlink_to(victim)
    fd = safefs.open_dir(tmp_path)
    try:
        with pytest.raises(OSError):
            safefs.seal_file(fd, "conn.json", uid=os.geteuid(), gid=os.getegid(), mode=0o444)
    finally:
        os.close(fd)
    assert oct(victim.stat().st_mode & 0o777) != oct(0o444)


def test_disk_usage_does_not_follow_links_out(tmp_path, victim):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "data").write_bytes(b"x" * 100_000)
    (ws / "root").symlink_to("/usr")
    used = safefs.disk_usage(ws)
    assert 100_000 <= used < 1_000_000


def test_remove_dir_and_remove_owned_by_spare_link_targets(tmp_path, victim):
    ws = tmp_path / "ws"
    (ws / "a").mkdir(parents=True)
    (ws / "a" / "link").symlink_to(victim.parent)
    safefs.remove_dir(tmp_path, "ws")
    assert not ws.exists() and victim.exists()
    if not ROOT:
        return
    shared = tmp_path / "shared"
    (shared / "theirs").mkdir(parents=True)
    (shared / "theirs" / "left.txt").write_text("x")
    (shared / "mine").write_text("y")
    (shared / "evil").symlink_to(victim)
    for path in (shared / "theirs", shared / "theirs" / "left.txt", shared / "evil"):
        os.lchown(path, STRANGER, STRANGER)
    assert safefs.remove_owned_by(STRANGER, [str(shared)]) == 2
    assert sorted(os.listdir(shared)) == ["mine"] and victim.exists()
