"""The rank file's metadata record (``/meta``): one read gives what the layout gives.

Rank files are written by the real collector (``start_run``/``log_metric``/``log_param``/
``log_artifact``/``end_run``) with NaN, +-inf, a negative NaN with a payload, odd names and
several contexts; journals by a rank that is still running and by a process killed with
SIGKILL.  Each is read twice: through its record (the fast path) and through its layout (the
same file without the record, as a file written before the record existed), and the two
RankMetas must agree field for field, every float bit for bit.  A record that fails a check
must leave the layout to decide: a probe value that only the layout holds shows which source
the reader used, without timing anything.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from _merge_kit import make_run

import yprov4ml_hpc
from yprov4ml_hpc import _constants as C
from yprov4ml_hpc import _journal as J
from yprov4ml_hpc._errors import DamagedRunError
from yprov4ml_hpc._fold import fold_journal, fold_to_memory
from yprov4ml_hpc._meta_record import (
    META_RECORD_MAX_INLINE_BYTES,
    MetaRecordError,
    RecordSeries,
    decode_meta_record,
    encode_meta_record,
)
from yprov4ml_hpc._reader import _rank, read_rank_attrs, read_rank_meta
from yprov4ml_hpc._series_stats import SeriesStats

NEG_NAN = struct.unpack(">d", bytes.fromhex("fff8000000000123"))[0]  # sign bit and a payload
ODD_NAMES = ["train/loss", "ünï cödé ∑", ".hidden", "a%2Fb", "Zeta", "alpha", "with space", "emoji 🚀"]


def canon(value: Any) -> Any:
    """A form where equal means identical: types kept (True is not 1), floats by their bits
    (NaN equals NaN only with the same bits), dataclass fields all included (``raw`` too)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: canon(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return (type(value).__name__, fields)
    if isinstance(value, float):
        return ("float", struct.pack(">d", value).hex())
    if isinstance(value, dict):
        return ("dict", [(canon(k), canon(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [canon(v) for v in value])
    if isinstance(value, Path):
        return ("path", str(value))
    return (type(value).__name__, value)


def without_record(path: Path, folder: Path) -> Path:
    """A copy of rank file ``path`` (same name) without its record: an older file."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = Path(shutil.copy2(path, folder / path.name))
    with h5py.File(copy, "r+") as handle:
        del handle[C.META_DATASET]
    return copy


def record_of(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as handle:
        return json.loads(handle[C.META_DATASET][()])


def assert_same_meta(fast: Any, slow: Any) -> None:
    # Path and size are the file's own (a copy lives elsewhere and may differ in size).
    fast_fields, slow_fields = canon(fast)[1], canon(slow)[1]
    for key in ("path", "file_bytes"):
        fast_fields.pop(key), slow_fields.pop(key)
    assert fast_fields == slow_fields


def _log_everything(save_dir: Path, artifact: Path) -> Path:
    run = yprov4ml_hpc.start_run(
        "metarec",
        provenance_save_dir=save_dir,
        run_id="r1",
        install_signal_handlers=False,
        disable_codecarbon=True,
        system_metrics_interval_s=0,
        buffer_size=16,
        flush_interval_s=0,
    )
    yprov4ml_hpc.log_param("lr", 1e-3)
    yprov4ml_hpc.log_param("nan_param", float("nan"))
    yprov4ml_hpc.log_param("ünï", {"layers": [64, 64], "inf": float("inf")})
    yprov4ml_hpc.log_artifact("weights", artifact)
    for step in range(40):  # more than one ring half: several batches per series
        yprov4ml_hpc.log_metric("loss", 1.0 / (step + 1), context="training", step=step)
    for name in ODD_NAMES:
        yprov4ml_hpc.log_metric(name, 1.5, context="ctx/ödd", step=3)
    yprov4ml_hpc.log_metric("one", 2.0, context="validation")  # one point: no interval
    for value in (float("nan"), float("nan")):
        yprov4ml_hpc.log_metric("all_nan", value, context="validation")  # no valid point
    for value in (1.0, float("inf"), float("-inf"), 3.0):
        yprov4ml_hpc.log_metric("diverged", value, context="training")  # inf + -inf: sum NaN
    for value in (1.0, float("nan"), NEG_NAN):
        yprov4ml_hpc.log_metric("neg_nan_last", value, context="training")
    for step in (5, 3, 8, 8):  # steps going back and standing still
        yprov4ml_hpc.log_metric("odd_steps", float(step), context="training", step=step)
    yprov4ml_hpc.end_run()
    return run.run_dir


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("metarec")
    artifact = root / "weights.bin"
    artifact.write_bytes(b"\x00" * 100)
    mp = pytest.MonkeyPatch()
    mp.setenv("YPROV4ML_HPC_CARBON", "0")
    try:
        return _log_everything(root / "prov", artifact)
    finally:
        mp.undo()


def test_folded_file_has_a_record_that_says_what_the_layout_says(real_run: Path, tmp_path: Path) -> None:
    path = real_run / "ranks" / "rank_000000.h5"
    record = record_of(path)
    assert record["version"] == 1 and "records" in record
    slow_path = without_record(path, tmp_path)
    for stats in (True, False):
        fast, slow = read_rank_meta(path, stats=stats), read_rank_meta(slow_path, stats=stats)
        assert_same_meta(fast, slow)
        assert fast.has_stats is stats
    # The run really holds the cases the comparison is about.
    by_name = {s.name: s.stats for s in read_rank_meta(path, stats=True).series}
    assert set(ODD_NAMES) <= set(by_name)
    all_nan = by_name["all_nan"]
    assert (all_nan.count, all_nan.nan_count, all_nan.valid) == (2, 2, 0)
    assert all_nan.min is None and all_nan.last_finite is None
    diverged = by_name["diverged"]
    assert math.isnan(diverged.sum) and (diverged.min, diverged.max) == (-math.inf, math.inf)
    neg = by_name["neg_nan_last"]
    assert struct.pack(">d", neg.last).hex() == "fff8000000000123" and neg.last_finite == 1.0
    assert by_name["one"].median_interval_s is None
    params = {p["name"]: p for p in read_rank_meta(path).params}
    assert math.isnan(params["nan_param"]["value"])
    # Series in the layout's order (HDF5 lists links by name, byte for byte).
    assert [s.h5path for s in read_rank_meta(path).series] == [s["h5path"] for s in record["series"]]


def test_the_record_is_read_instead_of_the_layout(real_run: Path, tmp_path: Path) -> None:
    """Without its series datasets the layout is unreadable; the record still answers."""
    path = real_run / "ranks" / "rank_000000.h5"
    gutted = tmp_path / "gutted" / path.name
    gutted.parent.mkdir()
    shutil.copy2(path, gutted)
    with h5py.File(gutted, "r+") as handle:
        for ctx in handle[C.METRICS_GROUP].values():
            for series in ctx.values():
                del series["value"]
    assert_same_meta(read_rank_meta(gutted, stats=True), read_rank_meta(path, stats=True))
    with pytest.raises(DamagedRunError, match=r"value is missing"):
        read_rank_meta(without_record(gutted, tmp_path / "older"), stats=True)


# --- a record that fails a check: the layout decides ------------------------------------------
def _set_series(index: int, **values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda r: r["series"][index].update(values)


def _set_stat(index: int, **values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda r: r["series"][index]["stats"].update(values)


MUTATIONS: dict[str, Callable[[dict[str, Any]], object] | str] = {
    "not_json": "not json {",
    "deep_nesting": "[" * 100_000 + "]" * 100_000,
    "a_list": "[1, 2]",
    "other_version": lambda r: r.update(version=2),
    "version_text": lambda r: r.update(version="1"),
    "version_bool": lambda r: r.update(version=True),
    "extra_key": lambda r: r.update(payload="x"),
    "no_series": lambda r: r.pop("series"),
    "rank_of_another_file": lambda r: r["attrs"].update(rank=1),
    "world_size_huge": lambda r: r["attrs"].update(world_size=2**40),
    "schema_other": lambda r: r["attrs"].update(schema="else"),
    "attr_list": lambda r: r["attrs"].update(host=["a"]),
    "attr_null": lambda r: r["attrs"].update(host=None),
    "finite_float_as_bits": lambda r: r["attrs"].update(flush_time_s={"f64": "3ff0000000000000"}),
    "float_bad_hex": lambda r: r["attrs"].update(flush_time_s={"f64": "zz" * 8}),
    "float_short_hex": lambda r: r["attrs"].update(flush_time_s={"f64": "7ff8"}),
    "count_negative": _set_series(0, count=-1),
    "count_not_stats_count": _set_series(0, count=999),
    "count_bool": _set_series(0, count=True),
    "name_not_text": _set_series(0, name=5),
    "h5path_outside_metrics": _set_series(0, h5path="/params"),
    "h5path_repeated": lambda r: r["series"][1].update(h5path=r["series"][0]["h5path"]),
    "series_extra_key": _set_series(0, note="x"),
    "stats_missing_field": lambda r: r["series"][0]["stats"].pop("sum"),
    "valid_plus_nan_not_count": _set_stat(0, valid=0),
    "min_above_max": _set_stat(0, min=1e300),
    "min_nan": _set_stat(0, min={"f64": "7ff8000000000000"}),
    "min_without_valid_points": lambda r: _set_stat(0, valid=0, nan_count=r["series"][0]["count"])(r),
    "last_finite_inf": _set_stat(0, last_finite={"f64": "7ff0000000000000"}),
    "time_missing": _set_stat(0, first_time_ns=None),
    "time_beyond_int64": _set_stat(0, last_time_ns=2**63),
    "float_as_int": _set_stat(0, sum=3),
    "records_missing_dataset": lambda r: r["records"].pop("events"),
    "records_not_text": lambda r: r["records"]["params"].append(42),
    "records_bad_json": lambda r: r["records"]["params"].append("not json {"),
    "records_without_key": lambda r: r["records"]["params"].append('{"value": 1}'),
}


def _craft(path: Path, mutation: Callable[[dict[str, Any]], object] | str) -> None:
    with h5py.File(path, "r+") as handle:
        if isinstance(mutation, str):
            text = mutation
        else:
            record = json.loads(handle[C.META_DATASET][()])
            mutation(record)
            text = json.dumps(record)
        del handle[C.META_DATASET]
        handle.create_dataset(C.META_DATASET, data=text, dtype=h5py.string_dtype("utf-8"))
        handle.attrs["host"] = "from-the-layout"  # the probe: only the layout says this


@pytest.fixture(scope="module")
def probe_source(real_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_run / "ranks" / "rank_000000.h5"


def test_an_intact_record_is_what_the_reader_uses(probe_source: Path, tmp_path: Path) -> None:
    """The probe works: with the record left as written, the layout's host is not seen."""
    copy = Path(shutil.copy2(probe_source, tmp_path / probe_source.name))
    _craft(copy, lambda r: None)
    host = read_rank_meta(copy, stats=True).attrs.host
    assert host == read_rank_meta(probe_source).attrs.host != "from-the-layout"
    assert read_rank_attrs(copy).host == host  # ls reads the record too (one read, not every attribute)


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_a_record_that_fails_a_check_leaves_the_layout_to_decide(
    probe_source: Path, tmp_path: Path, case: str
) -> None:
    copy = Path(shutil.copy2(probe_source, tmp_path / probe_source.name))
    _craft(copy, MUTATIONS[case])
    for stats in (True, False):
        meta = read_rank_meta(copy, stats=stats)
        assert meta.attrs.host == "from-the-layout", f"{case}: the record was trusted"
        assert_same_meta(meta, read_rank_meta(without_record(copy, tmp_path / "older"), stats=stats))
    assert read_rank_attrs(copy).host == "from-the-layout", f"{case}: ls trusted the record"


@pytest.mark.parametrize(
    "replace",
    [
        lambda h: h.create_group(C.META_DATASET),
        lambda h: h.__setitem__(C.META_DATASET, h5py.SoftLink("/params")),
        lambda h: h.__setitem__(C.META_DATASET, h5py.ExternalLink("/nonexistent.h5", "/m")),
        lambda h: h.create_dataset(C.META_DATASET, data=np.arange(3)),
        lambda h: h.create_dataset(C.META_DATASET, data=["{}"], dtype=h5py.string_dtype()),
        lambda h: h.create_dataset(C.META_DATASET, data=np.array(b'{"\xff": 1}', dtype=h5py.string_dtype())),
    ],
    ids=["group", "soft_link", "external_link", "ints", "list_of_text", "invalid_utf8"],
)
def test_a_record_that_is_no_json_text_leaves_the_layout_to_decide(
    probe_source: Path, tmp_path: Path, replace: Callable[[h5py.File], object]
) -> None:
    copy = Path(shutil.copy2(probe_source, tmp_path / probe_source.name))
    with h5py.File(copy, "r+") as handle:
        del handle[C.META_DATASET]
        replace(handle)
        handle.attrs["host"] = "from-the-layout"
    assert read_rank_meta(copy, stats=True).attrs.host == "from-the-layout"


def test_a_bad_record_over_a_bad_layout_is_damaged(probe_source: Path, tmp_path: Path) -> None:
    """The record cannot vouch for a rank the layout refuses: the layout's verdict stands."""
    copy = Path(shutil.copy2(probe_source, tmp_path / probe_source.name))
    _craft(copy, lambda r: r["attrs"].update(rank=3))
    with h5py.File(copy, "r+") as handle:
        handle.attrs["rank"] = 3
    with pytest.raises(DamagedRunError, match=r"rank_000000\.h5: rank 3 is out of range"):
        read_rank_meta(copy, stats=True)


# --- journals: a rank still running, a rank killed ----------------------------------------------
def _slow_read(path: Path, stats: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The layout path on the very same (in-memory) fold: the record is not looked at."""
    with monkeypatch.context() as patch:
        patch.setattr(_rank, "_meta_record", lambda handle, path: None)
        return read_rank_meta(path, stats=stats)


def test_a_running_ranks_journal_reads_the_same_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = yprov4ml_hpc.start_run(
        "live", provenance_save_dir=tmp_path, run_id="j", install_signal_handlers=False,
        disable_codecarbon=True, system_metrics_interval_s=0, flush_interval_s=0, buffer_size=8,
    )
    yprov4ml_hpc.log_param("lr", 0.5)
    for step in range(30):
        yprov4ml_hpc.log_metric("loss", 1.0 / (step + 1) if step % 7 else float("nan"), context="training")
        yprov4ml_hpc.log_metric("ödd/name", float(step), context="ctx 2")
    run.flush()
    journal = run.run_dir / "ranks" / "rank_000000.journal"
    assert journal.exists() and not journal.with_suffix(".h5").exists()
    with fold_to_memory(journal) as handle:
        assert C.META_DATASET in handle
    for stats in (True, False):
        fast = read_rank_meta(journal, stats=stats)
        assert canon(fast) == canon(_slow_read(journal, stats, monkeypatch))
    assert fast.attrs.status == "running"
    yprov4ml_hpc.end_run()


KILLED_RANK = textwrap.dedent(
    """
    import sys, time, yprov4ml_hpc as p
    run = p.start_run("killed", provenance_save_dir=sys.argv[1], run_id="k", install_signal_handlers=False,
                      disable_codecarbon=True, system_metrics_interval_s=0, flush_interval_s=0, buffer_size=8)
    p.log_param("lr", 0.1)
    for step in range(50):
        p.log_metric("loss", float("inf") if step == 9 else 1.0 / (step + 1), context="training")
    run.flush()
    print("flushed", flush=True)
    time.sleep(120)
    """
)


def test_a_killed_ranks_journal_reads_the_same_both_ways(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_RANK, str(tmp_path)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "YPROV4ML_HPC_CARBON": "0"},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "flushed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    (journal,) = tmp_path.glob("killed_k/ranks/rank_000000.journal")
    for stats in (True, False):
        fast = read_rank_meta(journal, stats=stats)
        assert canon(fast) == canon(_slow_read(journal, stats, monkeypatch))
    assert fast.attrs.status == "running"
    (loss,) = [s for s in read_rank_meta(journal, stats=True).series if s.name == "loss"]
    assert loss.stats is not None and loss.stats.count == 50 and loss.stats.max == math.inf


# --- what the collector cannot log: an empty series, records too large to copy --------------------
def test_an_empty_series_and_large_records_fold_and_read_the_same(tmp_path: Path) -> None:
    header = {"schema": C.RANK_SCHEMA, "schema_version": 1, "run_id": "e", "experiment": "x", "rank": 0,
              "world_size": 1, "status": "running", "start_ns": 1, "nan_attr": float("nan")}
    big = json.dumps({"name": "big", "value": "x" * (META_RECORD_MAX_INLINE_BYTES + 1)})
    frames = [
        J.encode_header(header),
        J.encode_series(0, "empty", "training"),  # a series that never got a point
        J.encode_series(1, "loss", "training"),
        J.encode_points(1, np.arange(3), np.array([1.0, 2.0, 0.5]), np.arange(3) + 10),
        J.encode_record("params", big),
        J.encode_record("events", json.dumps({"event": "start"})),
    ]
    journal = tmp_path / "ranks" / "rank_000000.journal"
    journal.parent.mkdir()
    journal.write_bytes(b"".join(frames))
    path = fold_journal(journal)
    record = record_of(path)
    assert "records" not in record  # too large to copy: read from the datasets
    slow_path = without_record(path, tmp_path / "older")
    for stats in (True, False):
        assert_same_meta(read_rank_meta(path, stats=stats), read_rank_meta(slow_path, stats=stats))
    meta = read_rank_meta(path, stats=True)
    assert [(s.name, s.count) for s in meta.series] == [("empty", 0), ("loss", 3)]
    assert meta.series[0].stats == SeriesStats(0)
    assert meta.params[0]["name"] == "big" and math.isnan(meta.attrs.raw["nan_attr"])


# --- the record itself ------------------------------------------------------------------------------
def test_every_float_comes_back_bit_for_bit() -> None:
    floats = [0.0, -0.0, 5e-324, 1.7976931348623157e308, 0.1, math.inf, -math.inf, math.nan, NEG_NAN,
              struct.unpack(">d", bytes.fromhex("7ff0000000000001"))[0]]  # a signalling NaN
    attrs = {f"f{i}": value for i, value in enumerate(floats)} | {"flag": True, "n": 2**62, "s": "é"}
    stats = SeriesStats(count=2, nan_count=1, valid=1, min=-0.0, max=-0.0, sum=-0.0, last=NEG_NAN,
                        last_finite=-0.0, first_time_ns=-5, last_time_ns=7, median_interval_s=-1.5)
    text = encode_meta_record(attrs, [RecordSeries("n", "c", "/metrics/c/n", 2, stats)], {})
    record = decode_meta_record(text)
    assert record is not None
    assert canon(record.attrs) == canon(attrs)
    assert canon(record.series[0].stats) == canon(stats)
    assert "NaN" not in text and "Infinity" not in text  # strict JSON


def test_an_attribute_the_record_cannot_hold_leaves_the_file_without_one(tmp_path: Path) -> None:
    with pytest.raises(MetaRecordError, match="no form in the record"):
        encode_meta_record({"odd": np.arange(2)}, [], {})


def test_a_merge_reads_the_same_document_and_summary_through_either_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Byte for byte: the document and summary from records equal those from the layouts."""
    made = make_run(
        tmp_path / "prov", monkeypatch, world_size=3, loss=lambda r, s: math.inf if s == 4 else s - r
    )
    outputs = {}
    for name, patch in (("record", False), ("layout", True)):
        with monkeypatch.context() as context:
            if patch:
                context.setattr(_rank, "_meta_record", lambda handle, path: None)
            yprov4ml_hpc.merge(made.run_dir, tmp_path / name)
        (doc,) = (tmp_path / name).glob("prov_*.json")
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        summary.pop("generated_at")
        summary["collector"].pop("finalize_time_s", None)
        outputs[name] = (doc.read_bytes(), summary)
    assert outputs["record"] == outputs["layout"]
