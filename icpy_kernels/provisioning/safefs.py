"""Privileged file operations that never follow a path a sandboxed kernel can change.

A root server chowns, chmods and deletes inside directories that kernels write. A path walked
by name can be swapped for a symlink between check and use, so everything here works from
directory descriptors opened with ``O_NOFOLLOW`` and acts on names relative to them
(``dir_fd=``, ``follow_symlinks=False``): a symlink is changed or removed itself, never its
target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir(path: str | Path, *, dir_fd: int | None = None) -> int:
    """A descriptor for the directory ``path`` whose last component is not a symlink."""
    return os.open(path, DIR_FLAGS, dir_fd=dir_fd)


def make_dir(parent: str | Path, name: str, *, mode: int = 0o700,
             owners: Iterable[int] = ()) -> int:
    """Create (or reuse) ``parent/name`` and return a descriptor for it.

    ``parent`` is resolved by the caller (it is the server's own directory); ``name`` is one
    component. An existing entry is reused only if it is a real directory owned by this
    process's uid or one of ``owners`` (e.g. the sandbox's uids): anything else, a symlink
    first of all, raises ``PermissionError``.
    """
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"not a single path component: {name!r}")
    parent_fd = open_dir(parent)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, mode, dir_fd=parent_fd)
        try:
            fd = open_dir(name, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise PermissionError(f"{Path(parent, name)} is not a directory of ours") from exc
            raise
    finally:
        os.close(parent_fd)
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() and st.st_uid not in set(owners):
        os.close(fd)
        raise PermissionError(f"{Path(parent, name)} belongs to uid {st.st_uid}, not to this server")
    return fd


def chown_tree(fd: int, uid: int, gid: int, *, top_mode: int | None = None) -> None:
    """``chown`` the directory open as ``fd`` and everything below it, links included
    (not their targets); ``top_mode`` also sets the top directory's mode."""
    os.fchown(fd, uid, gid)
    if top_mode is not None:
        os.fchmod(fd, top_mode)
    # fwalk opens each subdirectory relative to its parent's descriptor and checks that it
    # is the entry it listed (no symlink swapped in): safe against a concurrent writer.
    for _, dirs, files, dirfd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)


def remove_dir(parent: str | Path, name: str) -> None:
    """Delete ``parent/name`` and everything in it, following no symlink."""
    try:
        parent_fd = open_dir(parent)
    except FileNotFoundError:
        return
    try:
        _remove_entry(parent_fd, name)
    finally:
        os.close(parent_fd)


def _remove_entry(parent_fd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        # shutil's fd-based rmtree checks each directory it opens against what it listed.
        shutil.rmtree(name, ignore_errors=True, dir_fd=parent_fd)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent_fd)


def seal_file(parent_fd: int, name: str, *, uid: int, gid: int, mode: int) -> None:
    """Give the file ``name`` (written by the server) its owner and mode through a descriptor
    opened without following a symlink."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PermissionError(f"{name} is not a regular file")
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def disk_usage(path: str | Path) -> int:
    """Bytes allocated under ``path``, walked through descriptors: a directory swapped for a
    symlink mid-walk (to ``/``, say) is never entered, so the figure is the kernel's alone."""
    try:
        top = open_dir(path)
    except OSError:
        return 0
    total = os.fstat(top).st_blocks * 512
    try:
        for _, dirs, files, dirfd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            for name in dirs + files:
                with contextlib.suppress(OSError):
                    total += os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_blocks * 512
    except OSError:
        pass
    finally:
        os.close(top)
    return total


def total_usage(paths: Iterable[str | Path]) -> int:
    return sum(disk_usage(p) for p in paths)


def remove_owned_by(uid: int, roots: Iterable[str]) -> int:
    """Delete every entry owned by ``uid`` under ``roots`` (shared writable places such as
    /tmp), so that a uid leased again finds nothing of its previous session. Returns how
    many top entries went."""
    removed = 0
    for root in roots:
        try:
            root_fd = open_dir(root)
        except OSError:
            continue
        try:
            for _, dirs, files, dirfd in os.fwalk(".", dir_fd=root_fd, follow_symlinks=False):
                for name in list(dirs) + files:
                    try:
                        owner = os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_uid
                    except FileNotFoundError:
                        continue
                    if owner != uid:
                        continue
                    _remove_entry(dirfd, name)
                    removed += 1
                    if name in dirs:
                        dirs.remove(name)  # gone: fwalk must not descend into it
        finally:
            os.close(root_fd)
    return removed
