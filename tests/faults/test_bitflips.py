"""Bit flips in a rank file (a bad disk, a bad copy): the reader reports, never crashes.

The subject is a rank file folded by the collector's own fold from a journal of several flushes, with
fixed attribute values so that its bytes, and so each flip's outcome, are the same on every
run (``YPROV4ML_FAULTS_SEED`` changes the flips).  Each damaged copy is read by a child
process the way users and tools read it (load_run + every series, param, artifact and event;
``merge``; ``info``) under a watchdog.

What may be lost: the damaged file (reported by name in ``problems``, merge/info say so) or,
for a flip in raw data, the values it hit (HDF5 keeps no checksum of them).  Never: a
traceback, a crash of the interpreter, a hang, or the other ranks' data.
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faults_harness import SEED_VAR, read_untrusted

from yprov4ml_hpc import _journal as J
from yprov4ml_hpc._fold import fold_journal

FIXED_SEED = 20240611  # the CI flips; YPROV4ML_FAULTS_SEED picks others
ROOT_ATTRS: dict[str, object] = {
    "run_id": "flips", "experiment": "bits", "rank": 0, "world_size": 2, "local_rank": 0,
    "local_size": 2, "host": "node001", "pid": 4242, "launcher": "mpi", "job_id": "",
    "gpu_ids": "[]", "versions": {"yprov4ml_hpc": "test"}, "start_ns": 1_700_000_000_000_000_000,
    "end_ns": 0, "status": "running", "user_namespace": "", "command": ["train.py", "--lr", "0.1"],
    "cwd": "/work", "buffer_size": 1024, "flush_interval_s": 10.0, "finalize_timeout_s": 120.0,
    "prov_detail": "auto", "ignored_arguments": [], "log_calls": 0, "series": 0, "flushes": 0,
    "flush_time_s": 0.0, "bytes_written": 0, "points": 0,
}


def write_fixed_rank_file(path: Path, rank: int = 0) -> None:
    """A realistic rank file (3 series, params, artifacts, events, 6 flushes), byte-reproducible:
    the journal a run would write, folded by the collector's own fold (as end_run does)."""
    frames = [J.encode_header({**ROOT_ATTRS, "schema": "yprov4ml_hpc/rank", "schema_version": 1,
                               "rank": rank})]
    series = (("loss", "training"), ("acc", "validation"), ("gpu/power", "system"))
    step = 0
    for flush in range(6):
        for k, (name, ctx) in enumerate(series):
            if flush == 0:
                frames.append(J.encode_series(k, name, ctx))
            steps = np.arange(step, step + 400, dtype=np.int64)
            frames.append(J.encode_points(k, steps, rank * 1e6 + k * 1e3 + steps * 0.5,
                                          1_700_000_000_000_000_000 + steps * 1_000_000))
        epoch = {"event": "epoch", "epoch": flush, "time_ns": flush}
        frames.append(J.encode_record("events", json.dumps(epoch)))
        if flush == 0:
            lr = {"name": "lr", "value": 0.1, "type": "float"}
            frames.append(J.encode_record("params", json.dumps(lr)))
            frames.append(J.encode_record("params", json.dumps(
                {"name": "cfg", "value": {"layers": [64, 64]}, "type": "dict"})))
            frames.append(J.encode_record("artifacts", json.dumps({
                "name": "model.pt", "path": "artifacts/rank_000000/model.pt",
                "size": 10, "sha256": "0" * 64, "role": "output",
            })))
        frames.append(J.encode_attrs({"log_calls": step, "series": 3, "updated_ns": 0, "flush_time_s": 0.0}))
        step += 400
    frames.append(J.encode_attrs({"status": "finished", "end_ns": 1_700_000_100_000_000_000}))
    journal = path.with_name(path.name.replace(".h5", ".journal"))
    journal.write_bytes(b"".join(frames))
    assert fold_journal(journal) == path


@pytest.fixture(scope="module")
def pristine_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-rank run directory: rank 0 will be damaged, rank 1 stays intact."""
    root = tmp_path_factory.mktemp("bits") / "bits_flips"
    (root / "ranks").mkdir(parents=True)
    (root / "artifacts").mkdir()
    for rank in (0, 1):
        write_fixed_rank_file(root / "ranks" / f"rank_{rank:06d}.h5", rank)
    return root


def test_subject_file_is_reproducible(tmp_path: Path, pristine_dir: Path) -> None:
    """The flips hit the same bytes on every run (else their outcomes could not be compared)."""
    again = tmp_path / "again.h5"
    write_fixed_rank_file(again)
    digest = hashlib.sha256((pristine_dir / "ranks" / "rank_000000.h5").read_bytes()).hexdigest()
    assert hashlib.sha256(again.read_bytes()).hexdigest() == digest


def flip_copies(pristine: Path, workdir: Path, seed: int, count: int) -> list[tuple[Path, list[int]]]:
    """``count`` copies of the run, each with 1-8 bits flipped in rank 0's file.

    Half the copies get their flips in the first 4 KiB (superblock, root object header and
    attributes, B-tree roots), where they do the most harm; the rest anywhere in the file.
    """
    rng = random.Random(seed)
    original = (pristine / "ranks" / "rank_000000.h5").read_bytes()
    copies = []
    for i in range(count):
        target = workdir / f"flip{i:04d}" / pristine.name
        shutil.copytree(pristine, target)
        data = bytearray(original)
        span = 4096 if i % 2 == 0 else len(data)
        offsets = sorted(rng.randrange(span) for _ in range(rng.choice((1, 1, 2, 4, 8))))
        for offset in offsets:
            data[offset] ^= 1 << rng.randrange(8)
        (target / "ranks" / "rank_000000.h5").write_bytes(bytes(data))
        copies.append((target, offsets))
    return copies


def _fuzz(pristine: Path, workdir: Path, count: int) -> list[dict[str, Any]]:
    import os

    seed = int(os.environ.get(SEED_VAR) or FIXED_SEED)
    print(f"bit flips: seed {seed}, {count} copies")
    copies = flip_copies(pristine, workdir, seed, count)
    results = read_untrusted([c for c, _ in copies], workdir, item_timeout=6.0)
    for result, (_, offsets) in zip(results, copies, strict=True):
        result["offsets"] = offsets
    tally = collections.Counter((r["reader"], r["merge"], r["info"]) for r in results)
    print("outcomes (reader, merge, info):", dict(tally))
    return results


@pytest.fixture(scope="module")
def fuzz_ci(pristine_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _fuzz(pristine_dir, tmp_path_factory.mktemp("flips"), 30)


def _describe(bad: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"copy {r['i']} offsets {r['offsets']}: reader={r['reader']} merge={r['merge']} info={r['info']}\n"
        + "\n".join(f"    {k}: {str(v)[-600:]}" for k, v in r["detail"].items() if v)
        for r in bad
    )


def _check_no_traceback(results: list[dict[str, Any]]) -> None:
    bad = [r for r in results if "error" in (r["reader"], r["merge"], r["info"])]
    assert not bad, f"{len(bad)} of {len(results)} damaged copies raised a traceback:\n{_describe(bad)}"


def _check_no_crash_or_hang(results: list[dict[str, Any]]) -> None:
    bad = [r for r in results if r["reader"] in ("crash", "hang")]
    assert not bad, f"{len(bad)} of {len(results)} damaged copies crashed or hung:\n{_describe(bad)}"


def _check_reported_by_name(results: list[dict[str, Any]]) -> None:
    for r in results:
        if r["reader"] == "reported" and r["problems"]:
            assert r["problems"] == ["rank_000000.h5"], r


def test_bitflips_never_raise_a_traceback(fuzz_ci: list[dict[str, Any]]) -> None:
    """Every damaged copy reads back, or is reported (by name, or as a Yprov4mlError / exit 2).

    Which flips reach which code depends on the file's layout: a writer change can make these
    flips find a new way to a traceback (the failure shows the copy, its offsets and the trace).
    """
    _check_no_traceback(fuzz_ci)


def test_bitflips_never_crash_or_hang(fuzz_ci: list[dict[str, Any]]) -> None:
    """No damaged copy kills the reading process or makes it hang (watchdog: 6 s a copy).
    A hang is the known HDF5 loop of BUG F10 (reported as such, see the case below)."""
    _check_no_crash_or_known_hang(fuzz_ci)


def _check_no_crash_or_known_hang(results: list[dict[str, Any]]) -> None:
    hangs = [r for r in results if r["reader"] == "hang"]
    if hangs and len(hangs) == len([r for r in results if r["reader"] in ("crash", "hang")]):
        pytest.xfail(f"BUG F10 hit by {len(hangs)} copies:\n{_describe(hangs)}")
    _check_no_crash_or_hang(results)


def _record_heap_object_size_offset(data: bytes) -> int:
    """Offset of the size field of the global-heap object that holds the metadata record (the
    vlen string a reader reads first; params/artifacts/events and string attributes live in
    the same collection)."""
    start = data.index(b'{"version":1') - 16  # object header: index, refs, reserved, size
    return start + 8


@pytest.mark.xfail(strict=True, reason="BUG F10 (HDF5 2.0.0 via h5py 3.16): one flipped bit in the size of "
                   "a global-heap object (+256) makes HDF5 loop forever reading the vlen strings; other "
                   "flips segfault it")
def test_flipped_heap_object_size_does_not_hang(pristine_dir: Path, tmp_path: Path) -> None:
    """Bit 8 of the record's global-heap object size flipped (one bit, as a bad disk would): the
    reader reports the file instead of looping forever.  (Before the metadata record this
    was bit 11 of the first object, the schema attribute; with the record at the end of the
    collection that flip now runs off its end, an OSError that is reported, while this one
    still loops.)"""
    import struct

    target = tmp_path / pristine_dir.name
    shutil.copytree(pristine_dir, target)
    path = target / "ranks" / "rank_000000.h5"
    data = bytearray(path.read_bytes())
    offset = _record_heap_object_size_offset(bytes(data))
    size = struct.unpack_from("<Q", data, offset)[0]
    struct.pack_into("<Q", data, offset, size ^ 256)
    path.write_bytes(bytes(data))
    (result,) = read_untrusted([target], tmp_path, item_timeout=6.0)
    assert result["reader"] not in ("hang", "crash"), result


def test_bitflips_reported_by_name(fuzz_ci: list[dict[str, Any]]) -> None:
    """When the reader reports damage, it names the damaged file and no other."""
    _check_reported_by_name(fuzz_ci)


def test_intact_rank_survives_flips_in_its_neighbour(pristine_dir: Path, tmp_path: Path) -> None:
    """Rank 1's file is untouched by rank 0's damage: its values read back exactly."""
    import yprov4ml_hpc as prov4ml

    (target, _), = flip_copies(pristine_dir, tmp_path, FIXED_SEED, 1)
    with open(target / "ranks" / "rank_000000.h5", "r+b") as handle:
        handle.write(b"\xff" * 64)  # and make sure rank 0 is beyond repair
    data = prov4ml.load_run(target)
    assert [name for name, _ in data.problems] == ["rank_000000.h5"]
    series = data.series("loss", "training", 1)
    np.testing.assert_array_equal(series.value, 1e6 + np.arange(2400) * 0.5)


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="BUG F10 (HDF5 segfaults/hangs): with the default seed, 1 of 400 "
                   "copies segfaults the reader (F9, the tracebacks, is fixed)")
def test_bitflips_many(pristine_dir: Path, tmp_path: Path) -> None:
    """400 damaged copies: no traceback, no crash, damage named (hangs: BUG F10, reported)."""
    results = _fuzz(pristine_dir, tmp_path, 400)
    _check_no_traceback(results)
    _check_reported_by_name(results)
    _check_no_crash_or_known_hang(results)
