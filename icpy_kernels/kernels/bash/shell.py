"""The long-lived interactive bash child: cells go in on a pipe, output and sentinels come out."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable

from .records import Done, InputRequest, Record, Result, parse_record, split_records
from .script import init_script

# Output is batched: a stream message goes out FLUSH_DELAY after the first unsent byte, or
# as soon as FLUSH_SIZE characters are waiting. Small enough to feel live, large enough that
# `seq 1 2000000` travels in a few dozen messages (IOPub drops messages past its HWM).
FLUSH_DELAY = 0.01
FLUSH_SIZE = 1 << 20
READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20

OutputSink = Callable[[str, str], None]
InputHandler = Callable[[int, str, bool], None]


def _nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


def _grow_pipe(fd: int) -> None:
    # Fewer, larger reads: a 64 KiB pipe makes the writer and the kernel ping-pong.
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)


class _Output:
    """One of bash's output pipes, decoded incrementally so UTF-8 is never split."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.parts: list[str] = []
        self.size = 0
        self.open = True

    def take(self, final: bool = False) -> str:
        if final:
            tail = self.decoder.decode(b"", final=True)
            if tail:
                self.parts.append(tail)
        text = "".join(self.parts)
        self.parts.clear()
        self.size = 0
        return text


class BashProcess:
    """Drives one `bash -i` in its own session; every line sent yields one `D` sentinel.

    bash runs interactive (without a terminal) because only an interactive shell treats
    SIGINT as "abandon this command line and go back to the prompt": that is what makes
    `while true; do :; done` interruptible without killing the shell. PROMPT_COMMAND
    reports the status even when the line was abandoned.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sink: OutputSink,
        on_input: InputHandler,
        env: dict[str, str] | None = None,
    ) -> None:
        self.loop = loop
        self._sink = sink
        self._on_input = on_input
        self._env = env
        self._seq = 0
        self._waiters: dict[int, asyncio.Future[tuple[int, str] | None]] = {}
        self._payloads: dict[int, str] = {}
        self._ctl_buf = b""
        self._flush_handle: asyncio.TimerHandle | None = None
        self.ready = False
        self.busy = False
        self.interrupted = False
        self.returncode: int | None = None
        self._exited: asyncio.Future[None] = loop.create_future()
        self.tmpdir = tempfile.mkdtemp(prefix="icpy-bash-")
        self._cell_path = os.path.join(self.tmpdir, "cell")
        self._spawn()

    # -- lifecycle -------------------------------------------------------------------------

    def _spawn(self) -> None:
        cmd_r, cmd_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ctl_r, ctl_w = os.pipe()
        rep_r, rep_w = os.pipe()
        # The user's stdin: a pipe nobody writes to, so `cat` sees end-of-file at once
        # and the `read` wrapper can recognise it by inode.
        eof_r, eof_w = os.pipe()
        os.close(eof_w)
        for fd in (out_r, err_r):
            _grow_pipe(fd)
        # Hand bash its private pipes above 100 so the init script's moves onto 60-62
        # can never clobber one another, whatever numbers the kernel happened to get.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in (ctl_w, rep_r, eof_r)]
        os.close(ctl_w)
        os.close(eof_r)
        ctl_w, child_rep, eof_r = high
        env = dict(os.environ if self._env is None else self._env)
        for name in ("PROMPT_COMMAND", "BASH_ENV", "ENV", "HISTFILE"):
            env.pop(name, None)
        env.update(PS1="", PS2="", PS0="", TERM="dumb", PAGER="cat")
        self.proc = subprocess.Popen(
            [
                shutil.which("bash") or "/bin/bash",
                "--noprofile",
                "--norc",
                "--noediting",
                "-i",
                "+m",
            ],
            stdin=cmd_r,
            stdout=out_w,
            stderr=err_w,
            pass_fds=(ctl_w, child_rep, eof_r),
            env=env,
            # Own session and process group: interrupts and shutdown signal bash's group
            # without touching the kernel, and the kernel's own SIGINT never reaches bash.
            start_new_session=True,
        )
        self.pid = self.proc.pid
        for fd in (cmd_r, out_w, err_w, ctl_w, child_rep, eof_r):
            os.close(fd)
        self._cmd_w = cmd_w
        self._rep_w = rep_w
        # Keep a read end of the reply pipe so stale answers can be purged between cells
        # (left blocking: O_NONBLOCK would be shared with bash's descriptor).
        self._rep_r = rep_r
        self._ctl_r = ctl_r
        self.outputs = [_Output(out_r, "stdout"), _Output(err_r, "stderr")]
        for fd in (out_r, err_r, ctl_r):
            _nonblocking(fd)
        for out in self.outputs:
            self.loop.add_reader(out.fd, self._on_output, out)
        self.loop.add_reader(ctl_r, self._on_control)
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
            self.loop.add_reader(self._pidfd, self._on_exit)
        except (AttributeError, OSError):
            self._poll_exit()
        init_path = os.path.join(self.tmpdir, "init.sh")
        with open(init_path, "w") as f:
            f.write(init_script(ctl_w, child_rep, eof_r))
        # Sequence 0 is the init script; its sentinel marks the shell ready.
        fut = self.loop.create_future()
        self._waiters[0] = fut
        fut.add_done_callback(self._on_ready)
        self._ready_fut = fut
        self._send(f"builtin source {shlex.quote(init_path)}\n")

    def _on_ready(self, fut: asyncio.Future[tuple[int, str] | None]) -> None:
        # bash -i complains about job control on startup: that noise is not the user's.
        for out in self.outputs:
            self._drain(out)
            out.take(final=True)
        self._waiters.pop(0, None)
        self.ready = not fut.cancelled() and fut.result() is not None

    async def wait_ready(self, timeout: float = 10.0) -> bool:
        if not self.ready:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._ready_fut), timeout)
        return self.ready and self.returncode is None

    def _poll_exit(self) -> None:
        # Fallback for kernels without pidfd_open.
        if self.proc.poll() is not None:
            self._on_exit()
        elif self.returncode is None:
            self.loop.call_later(0.05, self._poll_exit)

    def _on_exit(self) -> None:
        if self.returncode is not None:
            return
        if self._pidfd is not None:
            self.loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self.returncode = self.proc.wait()
        if not self._exited.done():
            self._exited.set_result(None)
        self._on_control()
        for out in self.outputs:
            self._drain(out)
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def kill(self) -> None:
        """Kill bash and everything in its process group (background jobs included)."""
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGHUP)
        # _on_exit (pidfd reader or the poll fallback) resolves _exited: wait on the loop.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._exited), 0.2)
        self.kill_group()
        if self.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.proc.wait, 2)
        if self.proc.returncode is not None:
            self._on_exit()
        self.close()

    def kill_group(self) -> None:
        """SIGKILL bash's group without waiting (also safe from a signal handler)."""
        # Even when bash is gone: its background jobs keep the group alive.
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)

    def close(self) -> None:
        """Release fds and readers; bash must already be dead."""
        for out in self.outputs:
            if out.open:
                self.loop.remove_reader(out.fd)
                out.open = False
            with contextlib.suppress(OSError):
                os.close(out.fd)
        if self._ctl_r >= 0:
            self.loop.remove_reader(self._ctl_r)
            for fd in (self._ctl_r, self._cmd_w, self._rep_w, self._rep_r):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._ctl_r = -1
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    @property
    def alive(self) -> bool:
        return self.returncode is None

    # -- commands ------------------------------------------------------------------------

    def _send(self, line: str) -> None:
        data = line.encode("utf-8", "surrogateescape")
        while data:
            try:
                n = os.write(self._cmd_w, data)
            except BrokenPipeError:
                return
            data = data[n:]

    async def _run_line(self, make_line: Callable[[int], str]) -> tuple[int, str] | None:
        """Send one command line; resolve with (status, payload) or None if bash died."""
        if not self.alive:
            return None
        self._seq += 1
        seq = self._seq
        fut: asyncio.Future[tuple[int, str] | None] = self.loop.create_future()
        self._waiters[seq] = fut
        self._purge_replies()
        self.interrupted = False
        self.busy = True
        try:
            self._send(make_line(seq))
            return await fut
        finally:
            self.busy = False
            self._waiters.pop(seq, None)
            self._payloads.pop(seq, None)

    def _write_cell(self, code: str) -> None:
        # A file, not the command pipe: bash reads pipes a byte at a time, files in blocks.
        with open(self._cell_path, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(code)

    async def execute(self, code: str, allow_stdin: bool) -> int | None:
        """Run a cell at top level (so `declare` stays global); return its `$?`."""
        self._write_cell(code)
        path = shlex.quote(self._cell_path)
        flag = 1 if allow_stdin else 0
        # `\name` dodges any alias the user may define; stdin is the EOF pipe (fd 62).
        result = await self._run_line(
            lambda seq: (
                f"\\__icpy_pre {seq} {flag} {path}; "
                f'\\builtin eval -- "$__icpy_code" 0<&62; \\__icpy_post\n'
            )
        )
        for out in self.outputs:
            self._drain(out)
            self._flush(out, final=True)
        return None if result is None else result[0]

    async def query(self, kind: str, word: str) -> str | None:
        """Ask the live shell (compgen/type/help) without touching the user's `$?`."""
        if not self.ready:
            return None
        result = await self._run_line(
            lambda seq: f"\\__icpy_query {seq} {kind} {shlex.quote(word)}; \\__icpy_post\n"
        )
        return None if result is None else result[1]

    def interrupt(self) -> bool:
        """SIGINT bash's process group (the shell and its foreground job). Thread-safe."""
        if not (self.busy and self.alive):
            return False
        self.interrupted = True
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGINT)
        return True

    def reply_input(self, text: str | None) -> None:
        """Answer a `read`: a line, or None for end-of-file."""
        record = b"E\0" if text is None else b"L" + text.replace("\0", "").encode() + b"\0"
        with contextlib.suppress(OSError):
            os.write(self._rep_w, record)

    def _purge_replies(self) -> None:
        # An answer that arrived after its `read` was interrupted must not feed the next one.
        with contextlib.suppress(OSError):
            while select.select([self._rep_r], [], [], 0)[0] and os.read(self._rep_r, 65536):
                pass

    # -- readers ---------------------------------------------------------------------------

    def _on_control(self) -> None:
        if self._ctl_r < 0:
            return
        try:
            while chunk := os.read(self._ctl_r, 65536):
                self._ctl_buf += chunk
        except BlockingIOError:
            pass
        except OSError:
            return
        records, self._ctl_buf = split_records(self._ctl_buf)
        for text in records:
            self._handle_record(parse_record(text))

    def _handle_record(self, record: Record | None) -> None:
        if isinstance(record, Done):
            fut = self._waiters.get(record.seq)
            if fut is not None and not fut.done():
                fut.set_result((record.status, self._payloads.get(record.seq, "")))
        elif isinstance(record, Result):
            self._payloads[record.seq] = record.text
        elif isinstance(record, InputRequest) and record.seq in self._waiters:
            self.flush_output()
            self._on_input(record.seq, record.prompt, record.password)

    def _on_output(self, out: _Output) -> None:
        # Two pipes carry no common order; what the kernel can know is the order of its
        # reads, so text of the other stream read earlier goes out first.
        for other in self.outputs:
            if other is not out and other.size:
                self._flush(other)
        self._read(out)
        if out.size >= FLUSH_SIZE:
            self._flush(out)
        elif out.size and self._flush_handle is None:
            self._flush_handle = self.loop.call_later(FLUSH_DELAY, self.flush_output)

    def _read(self, out: _Output) -> bool:
        """One read; False when the pipe is empty (or closed)."""
        try:
            data = os.read(out.fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            if out.open:
                self.loop.remove_reader(out.fd)
                out.open = False
            return False
        text = out.decoder.decode(data)
        if text:
            out.parts.append(text)
            out.size += len(text)
        return True

    def _drain(self, out: _Output) -> None:
        # Everything bash wrote before its sentinel is already in the pipe: read it all.
        while out.open and self._read(out):
            if out.size >= FLUSH_SIZE:
                self._flush(out)

    def _flush(self, out: _Output, final: bool = False) -> None:
        text = out.take(final)
        if text and self.ready:
            self._sink(out.name, text)

    def flush_output(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for out in self.outputs:
            self._flush(out)
