"""The rank journal's frame format, its reader's cut rule, the fold, and the reader hooks."""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import yprov4ml_hpc as prov4ml
from yprov4ml_hpc import _journal as J
from yprov4ml_hpc._fold import fold_journal, fold_to_memory
from yprov4ml_hpc._reader import scan_rank_files

QUIET = {"flush_interval_s": 0, "system_metrics_interval_s": 0, "install_signal_handlers": False}
HEADER = {"schema": "yprov4ml_hpc/rank", "schema_version": 1, "run_id": "j", "experiment": "e",
          "rank": 0, "world_size": 1, "status": "running", "command": ["a", "b"]}


def _journal_frames() -> list[bytes]:
    """A header, two series (one defined by two ids), three batches, records, attributes."""
    steps = np.arange(10, dtype=np.int64)
    return [
        J.encode_header(HEADER),
        J.encode_series(0, "loss", "training"),
        J.encode_points(0, steps[:6], steps[:6] * 0.5, steps[:6] + 100),
        J.encode_record("params", '{"name": "lr", "value": 0.1}'),
        J.encode_series(1, "acc", "validation"),
        J.encode_points(1, steps[:3], -steps[:3].astype(float), steps[:3]),
        J.encode_series(2, "loss", "training"),  # a second ring (another thread) of "loss"
        J.encode_points(2, steps[6:], steps[6:] * 0.5, steps[6:] + 100),
        J.encode_record("events", '{"event": "end"}'),
        J.encode_attrs({"status": "finished", "end_ns": 5}),
    ]


def _expected(frames: list[bytes], cut: int) -> tuple[int, int, int]:
    """(loss points, acc points, records) in the complete frames of the first ``cut`` bytes."""
    loss = acc = records = 0
    end = 0
    for index, frame in enumerate(frames):
        end += len(frame)
        if end > cut:
            break
        if index in (2, 7):
            loss += 6 if index == 2 else 4
        elif index == 5:
            acc += 3
        elif index in (3, 8):
            records += 1
    return loss, acc, records


def test_points_cost_24_bytes_plus_24_a_batch() -> None:
    n = 4096
    frame = J.encode_points(3, np.zeros(n, np.int64), np.zeros(n), np.zeros(n, np.int64))
    assert len(frame) == 24 * n + 24
    assert len(frame) / n < 25


def test_round_trip_and_fold_layout(tmp_path: Path) -> None:
    path = tmp_path / "rank_000000.journal"
    path.write_bytes(b"".join(_journal_frames()))
    contents = J.read_journal(path)
    assert contents.attrs["status"] == "finished" and contents.good_bytes == path.stat().st_size
    with fold_to_memory(path) as handle:
        assert handle.attrs["status"] == "finished" and handle.attrs["command"] == '["a", "b"]'
        loss = handle["metrics/training/loss"]
        np.testing.assert_array_equal(loss["step"][...], np.arange(10))
        np.testing.assert_array_equal(loss["value"][...], np.arange(10) * 0.5)
        np.testing.assert_array_equal(loss["time_ns"][...], np.arange(10) + 100)
        assert loss.attrs["name"] == "loss" and loss.attrs["context"] == "training"
        assert handle["metrics/validation/acc/value"].shape == (3,)
        assert [t.decode() for t in handle["params"][...]] == ['{"name": "lr", "value": 0.1}']
        assert handle["artifacts"].shape == (0,)
    target = fold_journal(path)
    assert not path.exists() and target.name == "rank_000000.h5"
    with h5py.File(target, "r") as handle:
        assert handle["metrics/training/loss/value"].shape == (10,)
        assert handle["metrics/training/loss/step"].maxshape == (None,)  # resizable, as before


def test_a_journal_cut_at_every_byte_reads_its_complete_frames() -> None:
    """What a kill or a full disk leaves at any byte: exactly the frames completed before it."""
    frames = _journal_frames()
    data = b"".join(frames)
    for cut in range(len(data) + 1):
        if cut < len(frames[0]):
            with pytest.raises(J.JournalError, match="header"):
                J.parse_journal(data[:cut])
            continue
        contents = J.parse_journal(data[:cut])
        loss, acc, records = _expected(frames, cut)
        got_loss = sum(len(b[1]) for b in contents.series.get(("loss", "training"), []))
        got_acc = sum(len(b[1]) for b in contents.series.get(("acc", "validation"), []))
        got_records = sum(len(r) for r in contents.records.values())
        assert (got_loss, got_acc, got_records) == (loss, acc, records), cut


def test_a_damaged_frame_ends_the_read_there() -> None:
    """A flipped bit fails the frame's crc32: the reader keeps the frames before it only."""
    frames = _journal_frames()
    data = bytearray(b"".join(frames))
    damaged_at = sum(len(f) for f in frames[:5]) + 30  # inside the acc batch
    data[damaged_at] ^= 0x10
    contents = J.parse_journal(bytes(data))
    assert contents.good_bytes == sum(len(f) for f in frames[:5])
    assert ("acc", "validation") in contents.series and contents.series[("acc", "validation")] == []
    assert sum(len(b[1]) for b in contents.series[("loss", "training")]) == 6


def test_the_h5_wins_over_a_journal_of_the_same_rank(tmp_path: Path) -> None:
    names = ["rank_000000.h5", "rank_000000.journal", "rank_000001.journal", ".rank_000002.h5.tmp-1-2",
             "notes.txt", "rank_000003.h5"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    files = scan_rank_files(tmp_path)
    assert {rank: path.name for rank, path in files.by_rank.items()} == {
        0: "rank_000000.h5", 1: "rank_000001.journal", 3: "rank_000003.h5"
    }
    assert files.duplicates == ()  # a journal beside its .h5 is superseded, not a second claim


def test_a_running_rank_reads_through_its_journal(tmp_path: Path) -> None:
    """One reader path: while running, load_run reads the journal (folded in memory) exactly as
    it reads the .h5 after end_run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("live", provenance_save_dir=tmp_path, buffer_size=100, **QUIET)
        for step in range(1000):
            prov4ml.log_metric("loss", step * 0.25, context="training", step=step)
        prov4ml.log_param("lr", 0.5)  # a record is on disk when the call returns
        live = prov4ml.load_run(run.run_dir)
        assert [p.name for p in (run.run_dir / "ranks").iterdir()] == ["rank_000000.journal"]
        assert [r.status for r in live.ranks] == ["running"] and live.params() == {"lr": 0.5}
        np.testing.assert_array_equal(live.series("loss", "training", 0).step, np.arange(1000))
        prov4ml.end_run()
    assert [p.name for p in (run.run_dir / "ranks").iterdir()] == ["rank_000000.h5"]
    done = prov4ml.load_run(run.run_dir)
    assert [r.status for r in done.ranks] == ["finished"]
    np.testing.assert_array_equal(done.series("loss", "training", 0).value, np.arange(1000) * 0.25)


def test_merge_folds_the_journals_of_ranks_that_died(tmp_path: Path) -> None:
    """`yprov4ml-hpc merge RUN_DIR` folds a journal whose writer is gone (a `killed` status
    frame, or `running` with its process gone from this host) and leaves a live one alone."""
    import os
    import socket
    import subprocess
    import sys

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("dead", provenance_save_dir=tmp_path, buffer_size=10, **QUIET)
        for step in range(25):
            prov4ml.log_metric("loss", step * 0.5, step=step)
        run.flush()
    ranks = run.run_dir / "ranks"
    # this process still runs: its journal is not folded; copies of it (its good frames) are
    contents = J.read_journal(ranks / "rank_000000.journal")
    live = (ranks / "rank_000000.journal").read_bytes()[: contents.good_bytes]
    header = contents.attrs
    body = live[next(J.iter_frames(live))[2] :]  # every frame after the header
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
    killed = J.encode_header({**header, "rank": 1, "world_size": 3}) + body
    killed += J.encode_attrs({"status": "killed"})
    gone = {"rank": 2, "world_size": 3, "pid": int(dead_pid), "host": socket.gethostname()}
    crashed = J.encode_header({**header, **gone}) + body
    (ranks / "rank_000001.journal").write_bytes(killed)
    (ranks / "rank_000002.journal").write_bytes(crashed)
    proc = subprocess.run([sys.executable, "-m", "yprov4ml_hpc", "merge", str(run.run_dir)],
                          capture_output=True, text=True, env={**os.environ}, check=False)
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in ranks.iterdir())
    assert names == ["rank_000000.journal", "rank_000001.h5", "rank_000002.h5"], proc.stderr
    data = prov4ml.load_run(run.run_dir)
    assert [r.status for r in data.ranks] == ["running", "killed", "running"]
    for rank in range(3):
        np.testing.assert_array_equal(data.series("loss", rank=rank).step, np.arange(25))
    prov4ml.end_run()
