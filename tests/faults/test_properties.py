"""Property-based tests (hypothesis) over what users may log: names, values, params, artifacts.

One run per test function stays open while hypothesis draws examples (a start/end pair costs
~0.4 s here); each example logs under its own context, flushes, reads the run back with
``load_run`` and compares, then checks that nothing appeared or changed outside the run
directory.  After the last example the run is ended and everything is read back again.

What may be lost: nothing.  Every metric point reads back bit for bit (NaN payloads, -0.0 and
infinities included; ints too large for a float become +-inf, as documented), every param
reads back with its type (huge ints, NaN, nested lists/dicts), every artifact reads back under
its exact name with its exact bytes; names that cannot be stored (NUL) raise ValueError at
the call.  Example counts are bounded so the suite stays fast; the seed follows
``YPROV4ML_FAULTS_SEED``.
"""

from __future__ import annotations

import hashlib
import math
import struct
import tempfile
import warnings
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faults_harness import seed_for, tree_changes, tree_snapshot
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import yprov4ml_hpc as prov4ml

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck),
                    database=None)
QUIET = {"flush_interval_s": 0, "system_metrics_interval_s": 0, "install_signal_handlers": False,
         "buffer_size": 64}

# --- strategies ---------------------------------------------------------------------------------
TRICKY_NAMES = [
    "/", "//", "..", ".", "../..", "a/../b", "/abs/path", ".hidden", "%2F", "%", "%25%2F", "a b",
    "train/loss", "\\..\\..\\x", "C:\\x", "~", "~/x", "$HOME", "*", "?", "[a]", "\t\n", "名前/损失",
    "🔥/📉", "\u202e", "\ufeff", "x" * 1000, "/" * 300, "." * 300, "é" * 5000,
]
names = st.one_of(
    st.sampled_from(TRICKY_NAMES),
    st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), min_size=1, max_size=40),
)
NAN_WITH_PAYLOAD = struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, NAN_WITH_PAYLOAD]
)
metric_values = floats | st.integers(-(2**1100), 2**1100)
steps = st.integers(-(2**63), 2**63 - 1)
json_leaves = (
    st.none() | st.booleans() | st.integers(-(2**200), 2**200) | floats
    | st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)
)
param_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(blacklist_categories=["Cs"]), max_size=10), inner, max_size=4),
    max_leaves=12,
)


def as_float(value: float | int) -> float:
    """What log_metric stores for a value: float(value), or +-inf for ints beyond float64."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def same(a: Any, b: Any) -> bool:
    """Equality that also compares types (True is not 1) and treats NaN as equal to NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


# --- one open run per test -------------------------------------------------------------------------
class OpenRun:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "sources").mkdir()
        self.before = tree_snapshot(root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.run = prov4ml.start_run("props", provenance_save_dir=root / "save", **QUIET)
        self.run_dir = self.run.run_dir
        self.counter = count()
        self.expected_series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def context(self) -> str:
        return f"example{next(self.counter)}"

    def outside_changes(self) -> list[str]:
        after = tree_snapshot(self.root, exclude=self.run_dir)
        return [c for c in tree_changes(self.before, after) if c not in ("+ save", "+ sources")
                and not c.startswith("+ sources/")]

    def check_series(self, data: prov4ml.RunData) -> None:
        for (name, ctx), (want_steps, want_values) in self.expected_series.items():
            series = data.series(name, ctx, 0)
            assert series.step.tolist() == want_steps, (name, ctx)
            got = series.value.view(np.int64).tolist()
            want = np.array(want_values, dtype=np.float64).view(np.int64).tolist()
            assert got == want, (name, ctx, series.value, want_values)


@pytest.fixture(scope="module")
def open_run() -> Iterator[OpenRun]:
    with tempfile.TemporaryDirectory(prefix="yprov4ml-props-") as tmp:
        state = OpenRun(Path(tmp))
        yield state
        if prov4ml.active_run() is state.run:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prov4ml.end_run()


@pytest.fixture(autouse=True)
def _no_active_run() -> Iterator[None]:
    """Overrides tests/conftest.py's fixture of this name, which ends a run left active after a
    test: here one run spans the module's tests (open_run ends it)."""
    yield


# --- metrics ----------------------------------------------------------------------------------------
@seed(seed_for("props-metrics"))
@SETTINGS
@given(series=st.lists(st.tuples(names, st.lists(st.tuples(metric_values, steps), min_size=1, max_size=80)),
                       min_size=1, max_size=4, unique_by=lambda s: s[0]))
def test_metric_names_and_values_read_back_exactly(open_run: OpenRun, series: list[Any]) -> None:
    """Any name (Unicode, '/', '..', 5000 chars), any float or int value, any int64 step."""
    ctx = open_run.context()
    for name, points in series:
        for value, step in points:
            prov4ml.log_metric(name, value, context=ctx, step=step)
        open_run.expected_series[(name, ctx)] = ([s for _, s in points], [as_float(v) for v, _ in points])
    open_run.run.flush()
    data = prov4ml.load_run(open_run.run_dir)
    assert data.problems == []
    open_run.check_series(data)
    assert open_run.outside_changes() == []


@seed(seed_for("props-contexts"))
@settings(SETTINGS, max_examples=20)
@given(context=names, name=names, value=floats)
def test_free_string_contexts_read_back_exactly(
    open_run: OpenRun, context: str, name: str, value: float
) -> None:
    """Contexts are free strings too (yProv4ML 3.x): they are escaped and read back exactly."""
    ctx = open_run.context() + "/" + context
    prov4ml.log_metric(name, value, context=ctx, step=0)
    open_run.expected_series[(name, ctx)] = ([0], [value])
    open_run.run.flush()
    data = prov4ml.load_run(open_run.run_dir)
    assert (name, ctx, 0) in data.series_keys()
    open_run.check_series(data)
    assert open_run.outside_changes() == []


# --- params -----------------------------------------------------------------------------------------
@seed(seed_for("props-params"))
@SETTINGS
@given(params=st.dictionaries(names, param_values, min_size=1, max_size=5))
def test_param_names_and_values_read_back_exactly(open_run: OpenRun, params: dict[str, Any]) -> None:
    """Any name, any JSON-like value: huge ints, NaN, inf, -0.0, nested lists and dicts."""
    prefix = open_run.context() + ":"
    for name, value in params.items():
        prov4ml.log_param(prefix + name, value)
    data = prov4ml.load_run(open_run.run_dir)
    stored = data.params(0)
    for name, value in params.items():
        assert same(stored[prefix + name], value), (name, value, stored[prefix + name])
    assert open_run.outside_changes() == []


# --- artifacts --------------------------------------------------------------------------------------
ARTIFACT_NAMES = [
    "../../escape.txt", "/etc/passwd", "C:\\Windows\\x.dll", "a/./b/../c.bin", "..\\..\\x",
    "~/.bashrc", "%2e%2e/x", "dir/", "model.pt", "a:b", "名前.txt", " spaced name ",
]
artifact_names = st.sampled_from(ARTIFACT_NAMES) | st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), min_size=1, max_size=30
)


@seed(seed_for("props-artifacts"))
@SETTINGS
@given(name=artifact_names, content=st.binary(max_size=2000))
def test_artifact_names_stay_inside_and_read_back(open_run: OpenRun, name: str, content: bytes) -> None:
    """An artifact under any name: the record keeps the exact name, the copy lies inside
    artifacts/rank_000000/ with the exact bytes, nothing is written anywhere else; a name with
    no usable path component ('..', '/') is refused with ConfigError."""
    source = open_run.root / "sources" / f"src{next(open_run.counter)}.bin"
    source.write_bytes(content)
    try:
        record = prov4ml.log_artifact(name, source)
    except prov4ml.ConfigError:
        assert not [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
        return
    stored = (open_run.run_dir / str(record["path"])).resolve()
    assert stored.is_relative_to((open_run.run_dir / "artifacts" / "rank_000000").resolve())
    assert stored.read_bytes() == content
    assert record["sha256"] == hashlib.sha256(content).hexdigest() and record["size"] == len(content)
    data = prov4ml.load_run(open_run.run_dir)
    assert any(a["name"] == name and a["path"] == record["path"] for a in data.artifacts(0))
    assert open_run.outside_changes() == []


# --- after the last example ---------------------------------------------------------------------------
def test_everything_reads_back_after_end_run(open_run: OpenRun) -> None:
    """Runs last (file order): end the run, then every series logged above reads back exactly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prov4ml.end_run()
    data = prov4ml.load_run(open_run.run_dir)
    assert data.ranks[0].status == "finished" and data.problems == []
    open_run.check_series(data)
    assert open_run.outside_changes() == []
