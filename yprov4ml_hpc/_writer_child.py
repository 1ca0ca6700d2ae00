"""The journal writer process of a rank (``start_run(writer="process")``).

Started by ``_writer_process.py`` with the journal's file descriptor, two socket pairs and the
rank's pid.  It runs the same :class:`JournalWriter` cycles as the writer thread, without a
thread: the rank's rings are shared memory (``_shared_ring.py``), so the training process only
stores points and, once a half of a ring is full, sends the ring's count in a 13-byte message.
No thread of the training process ever needs the GIL for the journal: that is what brings its
``log_metric`` tail close to the machine's own noise (see benchmarks/bench_tail.py).

Messages (``SOCK_SEQPACKET``: each send arrives whole, even from several threads or a signal
handler of the rank), one kind byte then the payload:

- rank -> writer: ``W`` + ``u32 id, i64 count``: a ring's half was handed over (its points up
  to ``count`` are in place); ``w`` the same, reply ``C`` when written; ``T`` + JSON
  ``{handed}`` a timer tick (write every ring up to those counts); ``Q`` + JSON ``{ticket,
  counters, handed}`` a flush; ``X`` + the same, the last flush, then exit; ``F`` + an encoded
  frame; ``f`` with a memfd holding a frame too large for one message; ``P`` + JSON
  ``[slot, half]`` with a memfd made in advance (start_run); ``R`` + JSON
  ``[id, name, context, half, slot]``, with the ring's memfd when ``slot`` is null.
  ``handed`` maps ring ids to counts.
- writer -> rank: ``D`` + JSON state after a flush (``ticket``, its accounting,
  ``report``, ``settled``: nothing is held back in memory); ``M`` + a warning's text; ``C`` a
  cycle asked for with ``w`` is done.

The process ignores SIGTERM, SIGINT, SIGHUP, SIGUSR1 and SIGUSR2: a job scheduler signals
every process of a job, and the rank, which handles them, ends its run through this process.
When the rank dies (pidfd), it writes every point the rank had handed over and exits.
"""

from __future__ import annotations

import array
import contextlib
import json
import mmap
import os
import select
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any

from ._shared_ring import SharedRingView, ring_bytes
from ._writer import JournalWriter

__all__ = ["HANDED", "INLINE_FRAME_MAX", "main"]

HANDED = struct.Struct("<Iq")  # W and w: ring id, count of its points in place

# A frame larger than this travels in a memfd (a SEQPACKET message must fit the socket buffer).
INLINE_FRAME_MAX = 60_000
_RECV_BYTES = INLINE_FRAME_MAX + 4096
_FD_SPACE = socket.CMSG_SPACE(4)  # one file descriptor a message (R and f)
_IGNORED_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2")


class _WriterProcess:
    def __init__(self, config: dict[str, Any]) -> None:
        self.cmd = socket.socket(fileno=config["cmd"])
        self.reply = socket.socket(fileno=config["reply"])
        self.parent = int(config["parent"])
        self.rings: dict[int, SharedRingView] = {}
        self.pool: dict[int, mmap.mmap] = {}  # ring memory the rank made in advance, by slot
        self.counters: dict[str, object] = {}
        self.writer = JournalWriter(
            Path(config["path"]), {},
            rings=lambda: list(self.rings.values()),
            counters=lambda: self.counters,
            warn=self._warn,
            flush_interval_s=0,  # the rank's timer sends T: only it knows what was logged
            max_backlog_bytes=int(config["max_backlog"]),
            adopt=(int(config["journal"]), int(config["good_bytes"])),
            threaded=False,
        )
        self.pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self.pidfd = os.pidfd_open(self.parent)

    def serve(self) -> None:
        while True:
            watched: list[Any] = [self.cmd] if self.pidfd is None else [self.cmd, self.pidfd]
            try:
                ready, _, _ = select.select(watched, [], [], 1.0)
            except InterruptedError:
                continue
            gone = (self.pidfd is not None and self.pidfd in ready) or os.getppid() != self.parent
            messages, closed = self._receive()
            stop = self._handle(messages)
            if stop or gone or closed:
                if not stop:  # the rank died: write what it handed over, change nothing else
                    self.writer.run_cycle(full=True)
                self.writer.close()
                return

    def _receive(self) -> tuple[list[tuple[bytes, list[int]]], bool]:
        """Every message waiting now, with its file descriptors; and whether the rank's end closed."""
        messages: list[tuple[bytes, list[int]]] = []
        while True:
            try:  # (socket.recv_fds of Python 3.11 drops its flags argument: recvmsg itself)
                data, ancillary, _, _ = self.cmd.recvmsg(_RECV_BYTES, _FD_SPACE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return messages, False
            except OSError:
                return messages, True
            if not data:
                return messages, True
            fds = [
                fd
                for level, kind, payload in ancillary
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS
                for fd in array.array("i", payload[: len(payload) - len(payload) % 4])
            ]
            messages.append((data, fds))

    def _handle(self, messages: list[tuple[bytes, list[int]]]) -> bool:
        """Apply a batch of messages in order; True once the rank asked to stop."""
        full, notify, stop = False, False, False
        tickets: list[int] = []
        for data, fds in messages:
            kind, body = data[:1], data[1:]
            if kind == b"F":
                self.writer.enqueue(body)
            elif kind == b"f":
                self.writer.enqueue(_read_memfd(fds[0]))
            elif kind == b"P":  # ring memory made in advance: a series takes it later
                slot, half = json.loads(body)
                self.pool[slot] = mmap.mmap(fds[0], ring_bytes(2 * half))
                os.close(fds[0])
            elif kind == b"R":
                series_id, name, context, half, slot = json.loads(body)
                if slot is None:
                    self.rings[series_id] = SharedRingView(name, context, half, series_id, fds[0])
                    os.close(fds[0])
                else:
                    memory = self.pool.pop(slot)
                    self.rings[series_id] = SharedRingView(name, context, half, series_id, memory)
            elif kind in (b"W", b"w"):
                self._handed(*HANDED.unpack(body))
                notify = notify or kind == b"w"
            elif kind in (b"Q", b"X", b"T"):
                request = json.loads(body)
                for series_id, count in request["handed"].items():
                    self._handed(int(series_id), count)
                if kind != b"T":
                    self.counters = request["counters"]
                    tickets.append(int(request["ticket"]))
                full, stop = True, stop or kind == b"X"
        if not full:
            for ring in self.rings.values():
                handed = ring.head
                if handed > ring.seen:
                    ring.seen = handed
                    self.writer.hand_off(ring)
        if messages:
            self.writer.run_cycle(full)
        for ticket in tickets:
            self._reply(b"D" + json.dumps(self._state(ticket, final=stop)).encode())
        if notify:
            self._reply(b"C")
        return stop

    def _handed(self, series_id: int, count: int) -> None:
        ring = self.rings.get(series_id)
        if ring is not None and count > ring.handed:  # counts sent by two threads may cross
            ring.handed = count

    def _state(self, ticket: int, *, final: bool) -> dict[str, object]:
        writer = self.writer
        return {
            "ticket": ticket, "final": final, "report": writer.report(), "good_bytes": writer.good_bytes,
            "settled": writer.settled,
            "points": writer.points, "flushes": writer.flushes, "bytes_written": writer.bytes_written,
            "flush_time_s": writer.flush_time_s, "cycles": writer.cycles, "errors": writer.errors,
            "error": writer.error, "gone": writer.gone, "points_dropped": writer.points_dropped,
        }

    def _warn(self, message: str) -> None:
        self._reply(b"M" + message.encode("utf-8", "replace"))

    def _reply(self, message: bytes) -> None:
        with contextlib.suppress(OSError):  # the rank is gone: nobody to tell
            self.reply.send(message)


def _read_memfd(fd: int) -> bytes:
    try:
        size = os.fstat(fd).st_size
        parts = []
        offset = 0
        while offset < size:
            piece = os.pread(fd, size - offset, offset)
            if not piece:
                break
            parts.append(piece)
            offset += len(piece)
        return b"".join(parts)
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``argv[0]`` is the JSON configuration the rank passes."""
    config = json.loads((sys.argv[1:] if argv is None else argv)[0])
    for name in _IGNORED_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    _WriterProcess(config).serve()
