"""ProcessJournalWriter: the rank's journal written by a process of its own (``writer="process"``).

The writer thread (``_writer.py``) needs the GIL a few times a cycle; in a training loop that
never releases it, each of those turns stops the training thread until the OS wakes it
again, which on a busy node can take milliseconds.  This writer moves the same cycles into a
process (``_writer_child.py``) that reads the rings from shared memory: the training thread
stores points and at a hand-off sends the ring's count (13 bytes), and nothing in the training
process waits for the journal except ``flush``/``end_run``, a record, and a ring the writer is
a whole ring behind on.

Same interface and promises as :class:`JournalWriter`, which it falls back to: if the process
cannot start or dies (OOM killer, a signal it cannot ignore), the rank reads the journal back,
cuts a torn last frame, and goes on writing it from a thread, from the first point of each
ring and the first frame the process had not written (found in the journal, not assumed).
What the process held in memory because the disk refused it is lost with it (said by
:meth:`report`).
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ._buffer import MetricBuffer
from ._journal import _ID_COUNT, KIND_POINTS, KIND_SERIES, iter_frames
from ._shared_ring import RingMemory, SharedRing, allocate_ring_memory, ring_views
from ._writer import JournalWriter, create_journal
from ._writer_child import HANDED, INLINE_FRAME_MAX

__all__ = ["ProcessJournalWriter"]

_WAIT_POLL_S = 0.05
_NOT_SENT = 1 << 62  # the label of a frame still being sent: no flush confirms it
_TAKEN = -1  # the label of a frame a takeover dealt with (written again, or found written)
_START_TIMEOUT_S = 60.0  # a cold start on a busy shared file system can take this long
_SEND_TIMEOUT_S = 30.0  # a writer that reads nothing for this long is hung: replace it
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
# The package's __init__ imports h5py and the rest of the API (0.25 s, ~50 MB): the process
# needs four modules and NumPy, so it gets an empty package object to import them from.
_CHILD_CODE = (
    "import sys, types; package = types.ModuleType('yprov4ml_hpc'); "
    "package.__path__ = [sys.argv[1] + '/yprov4ml_hpc']; sys.modules['yprov4ml_hpc'] = package; "
    "from yprov4ml_hpc._writer_child import main; main(sys.argv[2:])"
)


class ProcessJournalWriter:
    """Owns the writer process of one rank's journal, or the thread writer that replaced it."""

    def __init__(
        self,
        path: Path,
        header: Mapping[str, object],
        *,
        rings: Callable[[], Iterable[MetricBuffer]],
        counters: Callable[[], Mapping[str, object]],
        warn: Callable[[str], None],
        flush_interval_s: float,
        max_backlog_bytes: int,
    ) -> None:
        self.path = path
        self._rings = rings
        self._counters = counters
        self._warn = warn
        self._interval_s = flush_interval_s
        self._max_backlog = max_backlog_bytes
        self._fd, self.good_bytes = create_journal(path, header)
        self._confirmed_bytes = self.good_bytes  # everything before it is on disk (a flush said so)
        self._fallback: JournalWriter | None = None
        self._takeover_lock = threading.RLock()
        self._lost: str | None = None  # what the process took with it, if it died
        # the process's accounting, from its replies (names as JournalWriter's)
        self.points = 0
        self.flushes = 0
        self.bytes_written = self.good_bytes
        self.flush_time_s = 0.0
        self.cycles = 0
        self.errors = 0
        self.error: str | None = None
        self.gone: str | None = None
        self.points_dropped = 0
        self._report: str | None = None
        self._requested = 0
        self._done = 0
        self._final = False  # the process's last answer (to stop's X) has come
        self._settled = True  # nothing held back in the process's memory (as of its last answer)
        self._answered = False  # an answer has come: the process has started
        self._taking_over = False
        self._eof = False
        self._stopped = False
        # Frames sent and not yet confirmed on disk, with the first flush ticket that can confirm
        # them: a takeover writes again those it does not find in the journal.
        self._unconfirmed: list[list[Any]] = []  # [ticket, frame]
        self._pool: list[tuple[int, int, mmap.mmap, RingMemory]] = []  # (slot, half, memory, views)
        self._proc: subprocess.Popen[bytes] | None = None
        self._ticker_stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._cmd, self._reply = self._start_process()
        if self._fallback is None and flush_interval_s > 0:
            self._ticker = threading.Thread(target=self._tick, name="yprov4ml-hpc-writer-timer", daemon=True)
            self._ticker.start()

    # --- start and takeover --------------------------------------------------------------------
    def _start_process(self) -> tuple[socket.socket, socket.socket]:
        cmd, cmd_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        reply, reply_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Non-blocking, and without a Python timeout (a socket with one polls before every send):
        # a send that finds the socket full waits in _send's loop, with a deadline.
        cmd.setblocking(False)
        config = {
            "cmd": cmd_child.fileno(), "reply": reply_child.fileno(), "journal": self._fd,
            "good_bytes": self.good_bytes, "parent": os.getpid(), "path": str(self.path),
            "max_backlog": self._max_backlog,
        }
        # One thread for the libraries a numerical import might start (the process only copies).
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        try:
            fd, memory = allocate_ring_memory(2)  # memfd refused (seccomp, an old kernel): fail now
            memory.close()
            os.close(fd)
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD_CODE, _PACKAGE_PARENT, json.dumps(config)],
                pass_fds=(cmd_child.fileno(), reply_child.fileno(), self._fd),
                stdin=subprocess.DEVNULL, env=env,
            )
        except (OSError, AttributeError) as exc:  # AttributeError: no os.memfd_create (not Linux)
            self._take_over(f"could not start ({exc})")
        finally:
            cmd_child.close()
            reply_child.close()
        return cmd, reply

    def _take_over(self, why: str) -> None:
        """The process is gone (or never started): go on with a thread writer, losing nothing
        the process had not written that the rank still holds."""
        with self._takeover_lock:
            # Nothing to do once a thread writes, or once the process has said its last word
            # (stop() then only waits for it to exit); a signal handler nested in a takeover on
            # this thread (the lock is reentrant) leaves it to the takeover in progress.
            if self._fallback is not None or self._final or self._taking_over:
                return
            self._taking_over = True
            try:
                self._replace_process(why)
            finally:
                self._taking_over = False

    def _replace_process(self, why: str) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:  # hung, or its socket broke: end it first
            proc.kill()
            proc.wait()  # a process in uninterruptible I/O may take long: never two writers
        if proc is not None and proc.returncode is not None and why == "ended":
            code = proc.returncode
            why = f"ended ({f'signal {-code}' if code < 0 else f'exit status {code}'})"
        good, written, defined, tail = _scan_journal(self._fd, self._confirmed_bytes)
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, good)
        lost = 0
        for ring in list(self._rings()):
            first_kept = max(ring.head - ring.capacity, 0)
            done = written.get(ring.series_id, 0)
            if done < first_kept:  # the process had taken points it did not write (a disk error)
                first_kept += 1  # and log_metric may be overwriting the oldest slot right now
                lost += first_kept - done
            ring.tail = max(done, first_kept)
            ring.due = min(ring.due, ring.tail + ring.capacity)  # never past what is unwritten
            ring.seal = None
        if not self._settled or lost:
            held = self._report if not self._settled and self._report else "frames it had not written"
            self._lost = f"the writer process died holding {held}" + (
                f"; {lost} points were no longer in memory" if lost else ""
            )
        fallback = JournalWriter(
            self.path, {}, rings=self._rings, counters=self._counters, warn=self._warn,
            flush_interval_s=self._interval_s, max_backlog_bytes=self._max_backlog,
            adopt=(self._fd, good), defined=defined,
        )
        # its accounting goes on from the process's (points: what the journal holds)
        fallback.points = sum(written.values())
        fallback.flushes, fallback.flush_time_s = self.flushes, self.flush_time_s
        fallback.bytes_written = max(self.bytes_written, good)
        for entry in list(self._unconfirmed):
            if entry[1] not in tail:  # not written whole by the process
                fallback.enqueue(entry[1])
            entry[0] = _TAKEN
        self._unconfirmed.clear()
        self._fallback = fallback
        self._ticker_stop.set()
        self._warn(
            f"the journal writer process of {self.path} {why}; this rank writes its journal "
            "from a thread instead, from the first point that process had not written"
        )

    def _gone(self) -> bool:
        return self._eof or self._proc is None or self._proc.poll() is not None

    # --- called by producers -----------------------------------------------------------------
    def prepare_rings(self, half: int, count: int) -> None:
        """Make ``count`` rings' memory of ``half`` now and hand it to the process: the first
        series then cost their ``log_metric`` a message, not a memfd and its mapping."""
        for slot in range(count):
            if self._fallback is not None or self._stopped:
                return
            try:
                fd, memory = allocate_ring_memory(2 * half)
            except OSError:
                return  # make_ring allocates (or takes over) when a series needs it
            try:
                self._send(b"P" + json.dumps([slot, half]).encode(), fd)
            finally:
                os.close(fd)
            self._pool.append((slot, half, memory, ring_views(memory, 2 * half)))

    def make_ring(self, name: str, context: str, half: int, series_id: int) -> MetricBuffer:
        """A ring in shared memory: made in advance (``prepare_rings``), or now and announced
        to the process with its file descriptor."""
        pool = self._pool
        if self._fallback is None and pool and pool[-1][1] == half:
            with contextlib.suppress(IndexError):  # another thread took the last one
                slot, _, memory, views = pool.pop()
                ring = SharedRing(name, context, half, series_id, memory, views)
                self._send(b"R" + json.dumps([series_id, name, context, half, slot]).encode())
                return ring
        if self._fallback is None:
            try:
                fd, memory = allocate_ring_memory(2 * half)
            except OSError as exc:  # no shared memory left (or none allowed): a thread writes now
                self._take_over(f"got no shared memory for a new ring ({exc})")
            else:
                try:
                    ring = SharedRing(name, context, half, series_id, memory)
                    if not self._stopped:
                        message = b"R" + json.dumps([series_id, name, context, half, None]).encode()
                        self._send(message, fd)  # a dead process: the takeover finds the ring anyway
                finally:
                    os.close(fd)
                return ring
        fallback = self._fallback
        assert fallback is not None
        return fallback.make_ring(name, context, half, series_id)

    def hand_off(self, ring: MetricBuffer) -> None:
        """A ring's half is full: send its count (13 bytes; waits only if the process is
        hundreds of messages behind)."""
        fallback = self._fallback
        if fallback is not None:
            fallback.hand_off(ring)
            return
        self._send(b"W" + HANDED.pack(ring.series_id, ring.head))

    def enqueue(self, frame: bytes) -> None:
        """Send an encoded record or attribute frame (kept until a flush confirms it)."""
        if self._fallback is None:
            # Kept before the send (a takeover inside it writes the frame), labelled after it: a
            # flush requested meanwhile can only make the label later, never too early.
            entry: list[Any] = [_NOT_SENT, frame]
            self._unconfirmed.append(entry)
            try:
                self._send_frame(frame)
            except OSError as exc:  # no memfd for a large frame
                self._take_over(f"could not be sent a record ({exc})")
            if entry[0] == _NOT_SENT:
                entry[0] = self._requested + 1
            if self._fallback is None or entry[0] == _TAKEN:
                return
            entry[0] = _TAKEN  # a takeover began after this frame was kept: not written yet
        fallback = self._fallback
        assert fallback is not None
        fallback.enqueue(frame)

    def _send_frame(self, frame: bytes) -> None:
        if len(frame) <= INLINE_FRAME_MAX:
            self._send(b"F" + frame)
            return
        fd = os.memfd_create("yprov4ml-hpc-frame", os.MFD_CLOEXEC)
        try:
            os.pwrite(fd, frame, 0)
            self._send(b"f", fd)
        finally:
            os.close(fd)

    def request_flush(self) -> int:
        fallback = self._fallback
        if fallback is not None:
            return fallback.request_flush()
        return self._request(b"Q")

    def _handed(self) -> dict[int, int]:
        return {ring.series_id: ring.head for ring in list(self._rings())}

    def _request(self, kind: bytes) -> int:
        self._requested += 1
        ticket = self._requested
        request = {"ticket": ticket, "counters": dict(self._counters()), "handed": self._handed()}
        self._send(kind + json.dumps(request).encode())
        return ticket

    def _send(self, message: bytes, fd: int | None = None) -> None:
        """Send one message (with a file descriptor), waiting while the process catches up."""
        deadline = 0.0
        while True:
            try:
                if fd is None:
                    self._cmd.send(message)
                else:
                    socket.send_fds(self._cmd, [message], [fd])
                return
            except (BlockingIOError, InterruptedError):
                now = time.monotonic()
                deadline = deadline or now + _SEND_TIMEOUT_S
                if now > deadline:
                    self._take_over(f"read nothing for {_SEND_TIMEOUT_S:.0f} s (killed)")
                    return
                with contextlib.suppress(InterruptedError, ValueError, OSError):
                    select.select([], [self._cmd], [], _WAIT_POLL_S)
            except OSError:
                return  # it died (or stop closed the socket): a wait notices, the frame is kept

    def flush(self) -> bool:
        """Everything logged so far on disk (or in the backlog, warned); False if no writer."""
        if self._fallback is None and not self._stopped:
            ticket = self.request_flush()
            # The first answer may take the process's start (imports from a busy file system).
            deadline = None if self._answered else time.monotonic() + _START_TIMEOUT_S
            if self._fallback is None and self._wait(lambda: self._done >= ticket, deadline):
                return True
        fallback = self._fallback
        return fallback.flush() if fallback is not None else False

    def wait_for_room(self, ring: MetricBuffer) -> bool:
        if self._fallback is None and not self._stopped:
            self._send(b"w" + HANDED.pack(ring.series_id, ring.head))
            if self._wait(lambda: ring.head - ring.tail < ring.capacity):
                return True
        fallback = self._fallback
        return fallback.wait_for_room(ring) if fallback is not None else False

    def _wait(self, done: Callable[[], bool], deadline: float | None = None) -> bool:
        """Poll the replies until ``done()``; False (after taking over) if the process died."""
        while True:
            self._read_replies()
            if done():
                return True
            if self._fallback is not None:
                return False
            if self._gone() or (deadline is not None and time.monotonic() > deadline):
                self._read_replies()
                if done():
                    return True
                self._take_over("ended" if self._gone() else f"did not answer in {_START_TIMEOUT_S:.0f} s")
                return False
            with contextlib.suppress(InterruptedError, ValueError, OSError):
                select.select([self._reply], [], [], _WAIT_POLL_S)

    def _read_replies(self) -> None:
        while True:
            try:
                message = self._reply.recv(1 << 20, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._eof = True
                return
            if not message:
                self._eof = True
                return
            kind, body = message[:1], message[1:]
            if kind == b"D":
                self._apply_state(json.loads(body))
            elif kind == b"M":
                self._warn(body.decode("utf-8", "replace"))

    def _apply_state(self, state: dict[str, Any]) -> None:
        for name in ("points", "flushes", "bytes_written", "flush_time_s", "cycles", "errors",
                     "error", "gone", "points_dropped"):
            setattr(self, name, state[name])
        ticket = int(state["ticket"])
        self._report = state["report"]
        self._settled = bool(state["settled"])
        self._answered = True
        if self._settled:  # everything sent before this flush is on disk: forget it, in place
            self._confirmed_bytes = int(state["good_bytes"])
            confirmed = 0
            for entry in self._unconfirmed:
                if entry[0] > ticket:
                    break
                confirmed += 1
            del self._unconfirmed[:confirmed]
        self._done = max(self._done, ticket)
        self._final = self._final or bool(state["final"])

    def _tick(self) -> None:
        """The flush timer: send every ring's count (only this process knows them) for the
        writer process to write; notice a dead process and its warnings."""
        while not self._ticker_stop.wait(self._interval_s):
            if self._fallback is not None or self._stopped:
                return
            with contextlib.suppress(OSError):
                self._cmd.send(b"T" + json.dumps({"handed": self._handed()}).encode())
            self._read_replies()
            if self._gone() and not self._ticker_stop.is_set():
                self._take_over("ended")
                return

    # --- lifecycle -----------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        fallback = self._fallback
        return fallback.alive if fallback is not None else not self._stopped

    def stop(self, timeout: float | None = None) -> None:
        """Write everything, end the process (or thread) and close the journal."""
        self._ticker_stop.set()  # no timer tick may see the process exit below as a death
        ticker = self._ticker
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=10.0)
        if self._fallback is None and not self._stopped:
            ticket = self._request(b"X")
            if self._wait(lambda: self._done >= ticket and self._final) and self._proc is not None:
                try:
                    self._proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
        fallback = self._fallback
        if fallback is not None:
            fallback.stop(timeout)
        self._stopped = True
        for sock in (self._cmd, self._reply):
            sock.close()
        if fallback is None:
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def before_fork(self) -> None:
        if self._fallback is not None:
            self._fallback.before_fork()

    def after_fork_in_parent(self) -> None:
        if self._fallback is not None:
            self._fallback.after_fork_in_parent()

    def forget_after_fork(self) -> None:
        """In a forked child: close this process's copies, send nothing, wait for nothing."""
        self._stopped = True
        self._proc = None
        if self._fallback is not None:
            self._fallback.forget_after_fork()
            return
        for sock in (self._cmd, self._reply):
            with contextlib.suppress(OSError):
                sock.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def report(self) -> str | None:
        fallback = self._fallback
        parts = [p for p in (self._lost, fallback.report() if fallback is not None else self._report) if p]
        return "; ".join(parts) or None


def _scan_journal(fd: int, confirmed: int) -> tuple[int, dict[int, int], set[int], bytes]:
    """``(good bytes, points written per ring id, ids defined, bytes after `confirmed`)``."""
    written: dict[int, int] = {}
    defined: set[int] = set()
    good = 0
    # The journal's descriptor is write-only: read the same file (even if it was unlinked).
    reader = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY)
    try:
        size = os.fstat(reader).st_size
        if size == 0:
            return 0, written, defined, b""
        memory = mmap.mmap(reader, size, prot=mmap.PROT_READ)
    finally:
        os.close(reader)
    with memory:
        view = memoryview(memory)
        try:
            for kind, payload, end in iter_frames(view):
                if kind == KIND_POINTS:
                    series_id, n = _ID_COUNT.unpack_from(payload)
                    written[series_id] = written.get(series_id, 0) + n
                elif kind == KIND_SERIES:
                    defined.add(int.from_bytes(payload[:4], "little"))
                good = end
                del payload
            tail = bytes(view[min(confirmed, good):good])
        finally:
            view.release()
    return good, written, defined, tail
