"""JournalWriter: the one thread that writes a rank's journal, so the training thread never does.

The training thread hands work over without I/O: a ring whose half is full is checksummed
in place and goes onto ``_due`` (a deque append), an encoded record or attribute frame onto
``_frames``; a sleeping writer is woken by releasing a lock.  The writer appends a cycle's
frames straight from the rings with one ``os.writev`` (which releases the GIL: a background
h5py write would hold it for milliseconds).

Why the training thread never releases the GIL on this path: every time it does (a syscall,
a checksum of more than 5 KiB), a waiting writer takes the GIL, and then wins it back after
each of its own short releases before the OS has woken the training thread, which waits up
to the 5 ms switch interval.  So a hand-off makes no syscall that releases the GIL (a lock
release does not), checksums in small pieces, and the writer takes the GIL about twice a
cycle: once to frame the whole cycle, once after its single ``writev``.

Waiting (``flush()``, a ring the writer is a whole ring behind on) polls a socket pair with
``select`` and a short timeout, never a lock: a signal handler that interrupts a wait and
calls ``end_run()`` (Slurm's ``--signal=USR1`` pattern) waits the same way, and no lock held
by the interrupted frame can deadlock it.

Disk trouble never reaches the training thread.  A failing write warns once (file and
reason), truncates the journal back to the end of its last good frame, keeps the frames in
memory (``backlog``, bounded by ``max_buffer_mb``: past it new point batches are dropped
and counted, the oldest data is kept) and retries at the next cycle; :meth:`report` says
what was not written.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from ._buffer import MetricBuffer
from ._journal import encode_attrs, encode_header, encode_series, points_frame_parts

__all__ = ["JournalWriter"]

# Counter attributes (log_calls, points, ...) ride along a hand-off cycle at most this often;
# timer flushes, explicit flushes and close always write them.
_COUNTERS_MAX_AGE_S = 1.0
# How long a waiter sleeps in select() before looking again (a wake-up byte may have been
# consumed by another waiter, e.g. a signal handler's end_run nested in an interrupted flush).
_WAIT_POLL_S = 0.05
# writev takes at most IOV_MAX buffers (1,024 on Linux); a cycle over many series takes several.
_IOV_MAX = 1024


def _frame_parts(ring: MetricBuffer, start: int, stop: int, *, keep_gil: bool) -> list[bytes | memoryview]:
    """The POINTS frame of a ring's points ``[start, stop)``, as views of the ring (no copy)."""
    pieces = ring.slices(start, stop)
    return points_frame_parts(ring.series_id, [ring.step[p] for p in pieces], [ring.value[p] for p in pieces],
                              [ring.time_ns[p] for p in pieces], keep_gil=keep_gil)


def _publish(temp: Path, path: Path) -> None:
    """Give ``temp`` its real name without ever replacing a file there (another job's)."""
    try:
        os.link(temp, path)  # fails if ``path`` exists: never append to another job's journal
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename (not atomic there)
        if os.path.lexists(path):
            raise FileExistsError(f"{path} already exists") from None
        os.rename(temp, path)
        return
    os.unlink(temp)


def create_journal(path: Path, header: Mapping[str, object]) -> tuple[int, int]:
    """Create ``path`` with its header frame; ``(fd, bytes written)`` (OSError if it cannot).

    The header is written under a temporary name (a leading dot: no reader matches it) and the
    file is then linked to its real name, so a journal that readers can see always starts with
    a complete header, even if the rank dies inside start_run.  O_APPEND: after a truncation
    back to the last good frame, the next write lands there.
    """
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
    try:
        frame = encode_header(header)
        view = memoryview(frame)
        while view:
            view = view[os.write(fd, view):]
        _publish(temp, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return fd, len(frame)


class JournalWriter:
    """Owns the journal's file descriptor and the background thread that appends to it."""

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
        adopt: tuple[int, int] | None = None,
        defined: Iterable[int] = (),
        threaded: bool = True,
    ) -> None:
        """Create the journal and write its header frame now (raises OSError if it cannot).

        ``adopt=(fd, good_bytes)``: go on writing a journal that exists (the writer process's,
        or one it left); ``defined``: the series ids whose SERIES frame it already holds.
        ``threaded=False``: no thread; the owner calls :meth:`run_cycle` (the writer process).
        """
        self.path = path
        self._rings = rings
        self._counters = counters
        self._warn = warn
        self._interval = flush_interval_s if flush_interval_s > 0 else None
        self._max_backlog = max(max_backlog_bytes, 1 << 20)
        if adopt is None:
            self._fd, written = create_journal(path, header)
        else:
            self._fd, written = adopt
        stat = os.fstat(self._fd)
        self.identity = (stat.st_dev, stat.st_ino)
        self.good_bytes = written
        self._due: collections.deque[MetricBuffer] = collections.deque()
        self._frames: collections.deque[bytes] = collections.deque()
        self._backlog: collections.deque[tuple[bytes, int]] = collections.deque()  # (frame, points)
        self._backlog_bytes = 0
        # series ids whose SERIES frame is in the backlog or on disk
        self._defined: set[int] = set(defined)
        # The writer sleeps in acquire() on a lock that stays held while nothing is pending;
        # a producer wakes it with release(), which never blocks and never releases the GIL
        # (a socket send would: see the module docstring).
        self._wake_lock = threading.Lock()
        self._wake_lock.acquire()
        # Waiters (flush, a ring a whole ring behind) poll a socket pair with select: a signal
        # handler can interrupt a wait and wait again without deadlocking on a lock.  It is not
        # a pipe, so write(2) stays the journal's alone (the kill-at-every-write fault test).
        self._done_r, self._done_w = socket.socketpair()
        for sock in (self._done_r, self._done_w):
            sock.setblocking(False)
        # The writer signals _done only while somebody waits (a send releases the GIL).  A hint:
        # a count that is ever wrong costs a waiter at most one _WAIT_POLL_S, never a wake-up.
        self._waiters = 0
        self._flush_requested = 0
        self._flush_done = 0
        self.cycles = 0
        self._stopping = False
        self._idle = False
        # Held by the writer through each cycle and by a thread that forks (see fork_guard):
        # a child must never be forked in the middle of a write (it hung pool workers here).
        self._cycle_lock = threading.Lock()
        self._fork_held = False
        self._counters_at = 0.0
        # accounting, read by the run's counters and its report
        self.flushes = 0
        self.flush_time_s = 0.0
        self.bytes_written = written
        self.points = 0
        self.points_dropped = 0
        self.error: str | None = None  # the latest write failure, None once writes succeed again
        self.gone: str | None = None  # the journal was deleted or replaced: its data is lost
        self.errors = 0
        self._tail_dirty = False  # a failed write left bytes after good_bytes that must go first
        self._dropping = False  # batches are being dropped (see _push)
        self._thread = threading.Thread(target=self._loop, name="yprov4ml-hpc-writer", daemon=True)
        if threaded:
            self._thread.start()

    # --- called by producers (training thread, samplers, signal handlers) ---------------------
    def hand_off(self, ring: MetricBuffer) -> None:
        """A ring's half is full: seal it and queue it for the writer.

        Sealing checksums the pending points here, on the producer's thread, holding the GIL
        (about 30 us for 4,096 points): the writer then only frames and writes them.
        """
        start, stop = ring.tail, ring.head
        if stop > start:
            ring.seal = (start, stop, _frame_parts(ring, start, stop, keep_gil=True))
        self._due.append(ring)
        if self._idle:  # a busy writer looks at _due again before it sleeps (see _loop)
            self._wake()

    def prepare_rings(self, half: int, count: int) -> None:
        """Nothing to prepare: a ring in this process's memory costs no more at first use."""

    def make_ring(self, name: str, context: str, half: int, series_id: int) -> MetricBuffer:
        """A new ring for a series (in this process's memory: this writer shares it)."""
        return MetricBuffer(name, context, half, series_id=series_id)

    def enqueue(self, frame: bytes) -> None:
        """Queue an encoded record or attribute frame."""
        self._frames.append(frame)
        self._wake()

    def request_flush(self) -> int:
        """Ask for a cycle that drains every ring and frame; returns the ticket to wait for."""
        self._flush_requested += 1
        ticket = self._flush_requested
        self._wake()
        return ticket

    def wait(self, done: Callable[[], bool]) -> bool:
        """Poll until ``done()`` or the writer thread has ended; returns ``done()``."""
        self._waiters += 1
        try:
            while not done():
                if not self._thread.is_alive():
                    return done()
                with contextlib.suppress(InterruptedError, ValueError, OSError):
                    select.select([self._done_r], [], [], _WAIT_POLL_S)
                    with contextlib.suppress(BlockingIOError):
                        self._done_r.recv(4096)
            return True
        finally:
            self._waiters -= 1

    def flush(self) -> bool:
        """Drain everything now and wait for it; False if the writer thread is gone."""
        self._waiters += 1  # before the request, so that its cycle signals us (see _loop)
        try:
            ticket = self.request_flush()
            return self.wait(lambda: self._flush_done >= ticket)
        finally:
            self._waiters -= 1

    def wait_for_room(self, ring: MetricBuffer) -> bool:
        """Block until the writer has drained some of a completely full ``ring``."""
        self._waiters += 1
        try:
            self.hand_off(ring)
            return self.wait(lambda: ring.head - ring.tail < ring.capacity)
        finally:
            self._waiters -= 1

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Drain everything, then end the thread and close the journal."""
        self._waiters += 1
        ticket = self.request_flush()
        self._stopping = True
        self._wake()
        self.wait(lambda: self._flush_done >= ticket and not self._thread.is_alive())
        self._waiters -= 1
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if not self._thread.is_alive():
            for sock in (self._done_r, self._done_w):
                sock.close()

    def before_fork(self) -> None:
        """os.register_at_fork(before=...): wait for the cycle in progress (bounded) to end."""
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._fork_held = self._cycle_lock.acquire(timeout=5.0)

    def after_fork_in_parent(self) -> None:
        if self._fork_held:
            self._fork_held = False
            self._cycle_lock.release()

    def forget_after_fork(self) -> None:
        """In a forked child: drop everything, never write (the parent owns the journal)."""
        self._due.clear()
        self._frames.clear()
        self._backlog.clear()
        self._stopping = True
        with contextlib.suppress(OSError):
            os.close(self._fd)
        for sock in (self._done_r, self._done_w):
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def settled(self) -> bool:
        """Every frame queued so far is on disk (none held back after a failed write)."""
        return not self._backlog and not self._tail_dirty and not self._frames

    def report(self) -> str | None:
        """What could not be written, in words, or None when everything is on disk."""
        parts = []
        if self._backlog:
            points = sum(n for _, n in self._backlog)
            parts.append(f"{len(self._backlog)} frames ({points} points) still unwritten")
        if self.points_dropped:
            parts.append(f"{self.points_dropped} points dropped (unwritten backlog over max_buffer_mb)")
        if self.gone is not None:
            parts.insert(0, f"the journal is lost: {self.gone}")
        if not parts and self.error is None:
            return None
        reason = f" (last error: {self.error})" if self.error and self.error != self.gone else ""
        return f"{'; '.join(parts) or 'a write failed'}{reason}"

    # --- the writer thread -------------------------------------------------------------------
    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # already released: a wake-up is pending
            self._wake_lock.release()

    def _loop(self) -> None:
        last_full = time.monotonic()
        while True:
            self._idle = True
            # Re-check after publishing _idle: a producer that saw _idle False did not wake us.
            if not (self._due or self._frames or self._flush_requested > self._flush_done or self._stopping):
                self._wake_lock.acquire(timeout=-1 if self._interval is None else self._interval)
            self._idle = False
            target, stopping = self._flush_requested, self._stopping
            now = time.monotonic()
            full = target > self._flush_done or stopping or (
                self._interval is not None and now - last_full >= self._interval
            )
            self.run_cycle(full, target)
            if full:
                last_full = now
            if self._waiters:
                with contextlib.suppress(BlockingIOError, OSError):
                    self._done_w.send(b"\0")
            if stopping and self._flush_done >= self._flush_requested:
                break
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def run_cycle(self, full: bool, target: int | None = None) -> None:
        """One cycle: the rings handed off (``full``: every ring with points) and the queued
        frames.  The writer thread's loop body; the writer process calls it directly."""
        if target is None:
            target = self._flush_requested
        with self._cycle_lock:
            try:
                self._cycle(full)
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any bad batch
                self._failed(f"{type(exc).__name__}: {exc}")
        if full:
            self._flush_done = max(self._flush_done, target)
        self.cycles += 1

    def close(self) -> None:
        """Close the journal (a writer without a thread, once its last cycle has run)."""
        self._stopping = True
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _cycle(self, full: bool) -> None:
        started = time.perf_counter()
        rings: Iterable[MetricBuffer]
        if full:
            self._due.clear()
            rings = [r for r in self._rings() if r.head != r.tail]
        else:
            handed: dict[MetricBuffer, None] = {}  # a ring handed off twice is taken once, to its
            while self._due:                       # latest seal (tails move after the write)
                handed[self._due.popleft()] = None
            rings = list(handed)
        frames: list[tuple[list[bytes | memoryview], int]] = []  # (parts, points), file order
        taken: list[tuple[MetricBuffer, int]] = []  # (ring, its tail once the frames are written)
        for ring in rings:
            self._take(ring, full, frames, taken)
        while self._frames:
            frames.append(([self._frames.popleft()], 0))
        if full or started - self._counters_at >= _COUNTERS_MAX_AGE_S:
            self._counters_at = started
            self.flushes += 1
            frames.append(([encode_attrs(self._counter_attrs())], 0))
        elif rings:
            self.flushes += 1
        if full:
            self._check_identity()
        self._write_frames(frames)
        for ring, tail in taken:  # written, or copied into the backlog: the slots are free again
            ring.tail = tail
        if self._backlog:
            self._write_backlog()
        self.flush_time_s += time.perf_counter() - started

    def _counter_attrs(self) -> dict[str, object]:
        return {
            **self._counters(),
            "flushes": self.flushes,
            "points": self.points,
            "bytes_written": self.bytes_written,
            "updated_ns": time.time_ns(),
            "flush_time_s": self.flush_time_s,
        }

    def _take(
        self,
        ring: MetricBuffer,
        full: bool,
        frames: list[tuple[list[bytes | memoryview], int]],
        taken: list[tuple[MetricBuffer, int]],
    ) -> None:
        """Add a ring's pending points to this cycle's frames, as views of the ring (no copy).

        A hand-off cycle writes the batch the producer sealed; a full cycle (timer, flush,
        close), or a seal that a full cycle overtook, checksums ``[tail, head)`` here.
        """
        seal = ring.seal
        if not full and seal is not None and seal[0] == ring.tail:
            start, stop, parts = seal
        else:
            start, stop = ring.tail, ring.head
            if stop <= start:
                return
            parts = _frame_parts(ring, start, stop, keep_gil=False)
        if ring.series_id not in self._defined:
            self._defined.add(ring.series_id)
            frames.append(([encode_series(ring.series_id, ring.name, ring.context)], 0))
        if self._dropping:  # the disk is still full and batches were dropped: keep a prefix
            self.points_dropped += stop - start
        else:
            frames.append((parts, stop - start))
        taken.append((ring, stop))

    def _write_frames(self, frames: list[tuple[list[bytes | memoryview], int]]) -> None:
        """Append the cycle's frames with one ``writev`` (per 1,024 buffers); on failure they
        go, copied, into the backlog (which also keeps them behind earlier unwritten ones)."""
        if not frames:
            return
        if self._backlog or self._tail_dirty:
            for parts, points in frames:
                self._push(b"".join(parts), points)
            return
        buffers = [part for parts, _ in frames for part in parts]
        size = sum(len(part) for part in buffers)
        try:
            for first in range(0, len(buffers), _IOV_MAX):
                chunk = buffers[first : first + _IOV_MAX]
                self._writev_all(chunk, sum(len(part) for part in chunk))
        except OSError as exc:
            self._cut_back(exc)  # back to the cycle's start: every frame goes to the backlog
            for parts, points in frames:
                self._push(b"".join(parts), points)
        else:
            self.good_bytes += size
            self.bytes_written += size
            self.points += sum(points for _, points in frames)

    def _writev_all(self, parts: list[bytes | memoryview], size: int) -> None:
        written = os.writev(self._fd, parts)
        if written < size:  # rare on a regular file: finish with plain writes
            self._write_all(b"".join(parts)[written:])

    def _cut_back(self, exc: OSError) -> None:
        """A write failed: cut off whatever part of the frame reached the file."""
        self._tail_dirty = True
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self.good_bytes)
            self._tail_dirty = False
        self._failed(exc.strerror or str(exc))

    def _push(self, frame: bytes, points: int) -> None:
        """Queue a frame for writing.  Past max_buffer_mb of unwritten frames a point batch is
        dropped (and counted) instead, and so is every later one until the queue has been
        written: while the disk stays full, what reaches it is an exact prefix of each series
        (a gap can appear only where the disk came back).  Records and attributes are kept."""
        if points and (self._dropping or self._backlog_bytes + len(frame) > self._max_backlog):
            self._dropping = True
            self.points_dropped += points
            return
        self._backlog.append((frame, points))
        self._backlog_bytes += len(frame)

    def _write_backlog(self) -> None:
        if self._tail_dirty:
            try:
                os.ftruncate(self._fd, self.good_bytes)
            except OSError as exc:
                self._failed(f"cannot cut the journal back to its last good frame: {exc}")
                return
            self._tail_dirty = False
        while self._backlog:
            frame, points = self._backlog[0]
            try:
                self._write_all(frame)
            except OSError as exc:
                self._cut_back(exc)  # a torn frame may be on disk: cut before the next write
                return
            self._backlog.popleft()
            self._backlog_bytes -= len(frame)
            self.good_bytes += len(frame)
            self.bytes_written += len(frame)
            self.points += points
        self._dropping = False  # everything queued is on disk: batches are accepted again
        if self.error is not None and self.gone is None:
            self._warn(f"writing rank journal {self.path} works again; nothing was lost")
            self.error = None

    def _write_all(self, frame: bytes) -> None:
        view = memoryview(frame)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def _check_identity(self) -> None:
        """Notice a journal deleted or replaced mid-run: its writes would go nowhere."""
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            self.gone = (
                f"it is gone ({exc.strerror}): it, ranks/ or the run directory was deleted or moved"
            )
        else:
            if (stat.st_dev, stat.st_ino) != self.identity:
                self.gone = "it was replaced by another file; data written since is not in it"
        if self.gone is not None:
            self._failed(self.gone)

    def _failed(self, reason: str) -> None:
        self.errors += 1
        first = self.error is None
        self.error = reason
        if first:
            self._warn(
                f"writing rank journal {self.path} failed: {reason}; training goes on, the points "
                "are kept in memory (up to max_buffer_mb) and written at the next flush"
            )
