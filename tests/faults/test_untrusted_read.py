"""Reading untrusted run directories: nothing executes, nothing crashes, hangs or leaks in.

A run directory may come from anyone (a colleague's tarball, a shared scratch folder).  Each
case below is a pristine 3-rank run with one thing changed by hand; every case is read by a
child process under a watchdog the way users and tools read it: ``load_run`` and every
series/param/artifact/event, ``yprov4ml-hpc merge -o OUT`` and ``yprov4ml-hpc info``.

What may be lost: the crafted file (reported by name, the other ranks merged) or the crafted
value.  Never: a traceback, a hang, memory blown up by a claimed size, data read from outside
the run directory, or code run because of what a file holds (pickle, eval, YAML, jsonpickle).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from crafting import (
    Craft,
    append_record,
    copy_run,
    dataset,
    directory_rank_file,
    edit_meta,
    external_link,
    external_link_to_fifo,
    fifo_rank_file,
    on_file,
    plant_payloads,
    rank_file,
    replace,
    replace_meta,
    set_attr,
    set_meta_text,
    set_series_attr,
    symlink_rank_file,
)
from faults_harness import build_run, clean_env, read_untrusted, require_command

import yprov4ml_hpc as prov4ml


def _xfail(case: str, reason: str) -> Any:
    return pytest.param(case, marks=pytest.mark.xfail(strict=True, reason=reason))


VLEN_STR = h5py.string_dtype("utf-8")
CASES: dict[str, Craft] = {
    # root attributes of the wrong type or out of range
    "rank_not_int": set_attr("rank", "abc"),
    "rank_negative": set_attr("rank", -5),
    "rank_float": set_attr("rank", 1.5),
    "rank_huge": set_attr("rank", 10**15),
    "world_size_not_int": set_attr("world_size", "many"),
    "world_size_huge": set_attr("world_size", 10**12),
    "world_size_zero": set_attr("world_size", 0),
    "pid_not_int": set_attr("pid", "x"),
    "local_rank_not_int": set_attr("local_rank", "z"),
    "start_ns_not_int": set_attr("start_ns", "yesterday"),
    "end_ns_float_nan": set_attr("end_ns", float("nan")),
    "status_array": set_attr("status", np.arange(3)),
    "status_unknown": set_attr("status", "<script>alert(1)</script>"),
    "rank_compound": set_attr("rank", np.zeros(2, dtype=[("a", "i4"), ("b", "f8")])),
    "rank_opaque": set_attr("rank", np.void(b"\x01\x02\x03")),
    "rank_reference": on_file(lambda h: h.attrs.__setitem__("rank", h["metrics"].ref)),
    "experiment_invalid_utf8": set_attr("experiment", np.bytes_(b"\xff\xfe\xfa")),
    # h5py decodes invalid UTF-8 in a vlen str with surrogateescape: the str then cannot be encoded
    "host_invalid_utf8_vlen": set_attr("host", np.array(b"node\xec01", dtype=VLEN_STR)),
    "series_name_invalid_utf8_vlen": set_series_attr("name", np.array(b"lo\xffss", dtype=VLEN_STR)),
    "schema_version_text": set_attr("schema_version", "1"),
    "schema_version_huge": set_attr("schema_version", 2**62),
    "schema_missing": on_file(lambda h: h.attrs.__delitem__("schema")),
    # metric series: odd names, odd objects, odd datasets
    "series_name_array": set_series_attr("name", np.arange(3)),
    "series_name_int": set_series_attr("name", 5),
    "series_context_array": set_series_attr("context", np.arange(2)),
    "series_name_missing": on_file(lambda h: h["metrics/training/loss"].attrs.__delitem__("name")),
    "series_is_dataset": replace("metrics/training/loss", dataset(np.arange(3))),
    "context_is_dataset": replace("metrics/training", dataset(np.arange(3))),
    "metrics_is_dataset": replace("metrics", dataset(np.arange(3))),
    "value_strings": replace("metrics/training/loss/value", dataset([b"a"] * 300)),
    "value_2d": replace("metrics/training/loss/value", dataset(np.zeros((300, 2)))),
    "value_compound": replace("metrics/training/loss/value",
                              dataset(np.zeros(300, dtype=[("a", "i4"), ("b", "f8")]))),
    "step_missing": on_file(lambda h: h["metrics/training/loss"].__delitem__("step")),
    "value_longer": replace("metrics/training/loss/value", dataset(np.arange(10**5, dtype=float))),
    "soft_link_loop": replace("metrics/training/loss",
                              lambda h, p: h.__setitem__(p, h5py.SoftLink("/metrics/training/loss"))),
    "dangling_soft_link": replace("metrics/training",
                                  lambda h, p: h.__setitem__(p, h5py.SoftLink("/nowhere"))),
    # records (params, artifacts, events): JSON lines
    "params_not_json": append_record("params", "not json {"),
    "params_json_list": append_record("params", "[1, 2]"),
    "params_json_string": append_record("params", '"just a string"'),
    "params_no_name": append_record("params", '{"value": 1}'),
    "params_name_list": append_record("params", '{"name": [1, 2], "value": 1}'),
    "params_deep_nesting": append_record("params", "[" * 100_000 + "]" * 100_000),
    "params_huge_int_text": append_record("params", '{"name": "n", "value": 1' + "0" * 10_000 + "}"),
    "params_dataset_ints": replace("params", dataset(np.arange(3))),
    "params_is_group": replace("params", lambda h, p: h.create_group(p)),
    "artifacts_json_list": append_record("artifacts", "[1]"),
    "events_json_number": append_record("events", "42"),
    # the metadata record (/meta): a reader that cannot vouch for it reads the layout instead
    "meta_not_json": set_meta_text("not json {"),
    "meta_deep_nesting": set_meta_text("[" * 100_000 + "]" * 100_000),
    "meta_huge_int_text": set_meta_text('{"version": 1' + "0" * 10_000 + "}"),
    "meta_json_list": set_meta_text("[1, 2]"),
    "meta_newer_version": edit_meta(lambda m: m.__setitem__("version", 2)),
    "meta_version_text": edit_meta(lambda m: m.__setitem__("version", "1")),
    "meta_no_attrs": edit_meta(lambda m: m.pop("attrs")),
    "meta_rank_other": edit_meta(lambda m: m["attrs"].__setitem__("rank", 2)),
    "meta_rank_huge": edit_meta(lambda m: m["attrs"].__setitem__("rank", 10**15)),
    "meta_world_size_huge": edit_meta(lambda m: m["attrs"].__setitem__("world_size", 10**12)),
    "meta_schema_newer": edit_meta(lambda m: m["attrs"].__setitem__("schema_version", 99)),
    "meta_attr_list": edit_meta(lambda m: m["attrs"].__setitem__("host", [1, 2])),
    "meta_attr_bad_float": edit_meta(lambda m: m["attrs"].__setitem__("flush_time_s", {"f64": "zz" * 8})),
    "meta_series_not_list": edit_meta(lambda m: m.__setitem__("series", {"a": 1})),
    "meta_series_extra_key": edit_meta(lambda m: m["series"][0].__setitem__("exec", "os.system")),
    "meta_count_negative": edit_meta(lambda m: m["series"][0].__setitem__("count", -1)),
    "meta_count_mismatch": edit_meta(lambda m: m["series"][0].__setitem__("count", 7)),
    # A consistent but absurd length: accepted (the record says it), reading clips to the data.
    "meta_count_huge": edit_meta(lambda m: (m["series"][0].__setitem__("count", 10**15),
                                            m["series"][0]["stats"].update(count=10**15, valid=10**15))),
    "meta_stats_min_nan": edit_meta(lambda m: m["series"][0]["stats"].__setitem__(
        "min", {"f64": "7ff8000000000000"})),
    "meta_stats_min_above_max": edit_meta(lambda m: m["series"][0]["stats"].__setitem__("min", 1e300)),
    "meta_stats_missing": edit_meta(lambda m: m["series"][0]["stats"].pop("last")),
    "meta_h5path_outside": edit_meta(lambda m: m["series"][0].__setitem__("h5path", "/params")),
    "meta_h5path_absent": edit_meta(lambda m: m["series"][0].__setitem__("h5path", "/metrics/x/nothing")),
    "meta_h5path_repeated": edit_meta(lambda m: m["series"][1].update(h5path=m["series"][0]["h5path"])),
    "meta_records_not_json": edit_meta(lambda m: m["records"]["params"].append("not json {")),
    "meta_records_not_text": edit_meta(lambda m: m["records"]["events"].append(42)),
    "meta_is_group": replace_meta(lambda h, p: h.create_group(p)),
    "meta_is_soft_link": replace_meta(lambda h, p: h.__setitem__(p, h5py.SoftLink("/params"))),
    "meta_is_external_link": replace_meta(
        lambda h, p: h.__setitem__(p, h5py.ExternalLink("/nonexistent.h5", "/m"))),
    "meta_is_ints": replace_meta(dataset(np.arange(3))),
    "meta_is_text_list": replace_meta(dataset(["{}", "{}"], dtype=VLEN_STR)),
    "meta_invalid_utf8": replace_meta(dataset(np.array(b'{"version": 1, "\xff": 1}', dtype=VLEN_STR))),
    # the files themselves
    "rank_file_fifo": fifo_rank_file,
    "rank_file_directory": directory_rank_file,
    "rank_file_empty": lambda d: rank_file(d, 2).write_bytes(b""),
    "rank_file_not_hdf5": lambda d: rank_file(d, 2).write_bytes(b"#!/bin/sh\necho pwned\n" * 100),
    "rank_file_symlink_dev_zero": symlink_rank_file("/dev/zero"),
    "external_link_fifo": external_link_to_fifo,
    "external_link_missing": external_link("/nonexistent/elsewhere.h5"),
}

KNOWN: dict[str, str] = {}  # case -> xfail reason of a known, unfixed bug
# Cases that hung until the watchdog fired (5 s each) before F13/F14 were fixed.
SLOW = {"rank_huge", "external_link_fifo"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_run(tmp_path_factory.mktemp("pristine"), 3, points=300)


def _read_crafted(pristine: Path, root: Path, cases: list[str]) -> dict[str, dict[str, Any]]:
    """Craft the cases, then read them all in one child process under a watchdog."""
    dirs = []
    for case in cases:
        run_dir = copy_run(pristine, root / case / pristine.name)
        CASES[case](run_dir)
        dirs.append(run_dir)
    results = read_untrusted(dirs, root, item_timeout=5.0)
    return dict(zip(cases, results, strict=True))


@pytest.fixture(scope="module")
def outcomes(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return _read_crafted(pristine, tmp_path_factory.mktemp("crafted"), [c for c in CASES if c not in SLOW])


def _params(cases: list[str]) -> list[Any]:
    return [_xfail(c, KNOWN[c]) if c in KNOWN else c for c in cases]


@pytest.mark.parametrize("case", _params([c for c in CASES if c not in SLOW]))
def test_crafted_file_is_read_or_reported(outcomes: dict[str, dict[str, Any]], case: str) -> None:
    """Reader, merge and info each read the crafted run or report it; never a traceback or hang."""
    _check_outcome(outcomes[case], case)


@pytest.mark.slow
@pytest.mark.parametrize("case", _params(sorted(SLOW)))
def test_crafted_file_is_read_or_reported_slow(pristine: Path, tmp_path: Path, case: str) -> None:
    """The same for the cases that hang today (each costs the watchdog's 5 s)."""
    _check_outcome(_read_crafted(pristine, tmp_path, [case])[case], case)


def _check_outcome(result: dict[str, Any], case: str) -> None:
    verdicts = {k: result[k] for k in ("reader", "merge", "info")}
    details = "\n".join(f"  {k}: {str(v)[-800:]}" for k, v in result["detail"].items() if v)
    assert set(verdicts.values()) <= {"ok", "reported"}, f"{case}: {verdicts}\n{details}"
    if result["problems"]:
        assert set(result["problems"]) <= {"rank_000000.h5", "rank_000002.h5"}, result["problems"]


# --- no execution ---------------------------------------------------------------------------------
READ_COMMANDS = [
    ["info", "{run}"], ["info", "--json", "{run}"], ["merge", "{run}", "-o", "{out}/merge"],
    ["summary", "{run}"], ["ls", "{parent}"], ["graph", "{run}", "-o", "{out}/graph"],
    ["report", "{run}", "-o", "{out}/report.html"], ["plot", "{run}", "-o", "{out}/plots"],
    ["export", "-f", "metrics-json", "-o", "{out}/m.json", "{run}"],
    ["export", "-f", "csv", "-o", "{out}/csv", "{run}"],
    ["export", "-f", "provn", "-o", "{out}/doc.provn", "{run}"],
    ["compare", "{run}", "{run}"],
]


def test_payloads_never_execute(pristine: Path, tmp_path: Path) -> None:
    """Pickles, eval-able text, YAML tags and jsonpickle/__reduce__ records planted in every
    attribute and record are never executed by the reader or any CLI command."""
    run_dir = copy_run(pristine, tmp_path / "evil" / pristine.name)
    marker = tmp_path / "EXECUTED"
    plant_payloads(run_dir, marker)
    code = (
        "import sys, warnings; warnings.simplefilter('ignore'); import yprov4ml_hpc as p\n"
        "r = p.load_run(sys.argv[1])\n"
        "[r.params(i.rank) for i in r.ranks]; r.artifacts(); r.events(); [r.meta(i.rank) for i in r.ranks]\n"
        "[r.series(*k) for k in r.series_keys()]\n"
    )
    subprocess.run([sys.executable, "-c", code, str(run_dir)], env=clean_env(), timeout=120,
                   capture_output=True, check=False)
    out = tmp_path / "out"
    from faults_harness import _has_command, cli_many

    commands = [
        [a.format(run=run_dir, out=out, parent=run_dir.parent) for a in command]
        for command in READ_COMMANDS if _has_command(command[0])
    ]
    results = cli_many(commands, tmp_path)
    assert not marker.exists(), "a CLI command executed a planted payload"
    assert {"merge", "report"} <= {c[0] for c in commands}
    for result in results:
        assert not result["error"], f"{result['args']}: {result['error']}"


def test_payloads_come_back_as_plain_data(pristine: Path, tmp_path: Path) -> None:
    """The planted records read back as the inert strings and dicts they are."""
    run_dir = copy_run(pristine, tmp_path / "evil" / pristine.name)
    marker = tmp_path / "EXECUTED"
    plant_payloads(run_dir, marker)
    data = prov4ml.load_run(run_dir)
    assert data.problems == []
    params = data.params(0)
    assert params["pickled"].startswith("c") or "builtins" in params["pickled"]  # protocol-0 text
    assert isinstance(data.ranks[0].attrs["pickle_text"], str)
    assert not marker.exists()


def test_report_escapes_html_in_names(pristine: Path, tmp_path: Path) -> None:
    """A metric name or status holding HTML is shown, never run, in the report."""
    require_command("report")
    run_dir = copy_run(pristine, tmp_path / "xss" / pristine.name)
    evil = "<script>alert('pwned')</script>"
    on_file(lambda h: h["metrics/training/loss"].attrs.__setitem__("name", evil))(run_dir)
    set_attr("status", evil)(run_dir)
    set_attr("host", "<img src=x onerror=alert(1)>")(run_dir)
    from faults_harness import cli

    proc = cli("report", str(run_dir), "-o", str(tmp_path / "report.html"), "--no-figures")
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "report.html").read_text()
    assert "<script>alert" not in html and "<img src=x" not in html


# --- no data from outside ---------------------------------------------------------------------------
def test_external_links_are_not_followed(pristine: Path, tmp_path: Path) -> None:
    """A dataset that is an external link to a file outside the run directory is not read."""
    run_dir = copy_run(pristine, tmp_path / "link" / pristine.name)
    secret = tmp_path / "secret.h5"
    with h5py.File(secret, "w") as handle:
        handle["data"] = np.full(300, 13.37)
    external_link(str(secret))(run_dir)
    data = prov4ml.load_run(run_dir)
    try:
        series = data.series("loss", "training", 0)
    except prov4ml.Yprov4mlError:
        return
    assert not np.any(series.value == 13.37), "read another file's data through an external link"


def test_duplicate_rank_claims_are_reported(pristine: Path, tmp_path: Path) -> None:
    """A file whose rank attribute disagrees with its name is not silently dropped or merged over."""
    run_dir = copy_run(pristine, tmp_path / "dup" / pristine.name)
    set_attr("rank", 0, rank=1)(run_dir)
    data = prov4ml.load_run(run_dir)
    files = len(list((run_dir / "ranks").glob("rank_*.h5")))
    assert len(data.ranks) + len(data.problems) == files, (data.ranks, data.problems)


def test_symlinked_rank_file_outside_is_reported_or_read(pristine: Path, tmp_path: Path) -> None:
    """A rank file that is a symlink to a directory or a device is reported, never a hang."""
    run_dir = copy_run(pristine, tmp_path / "sym" / pristine.name)
    rank_file(run_dir, 2).unlink()
    rank_file(run_dir, 2).symlink_to(tmp_path)
    data = prov4ml.load_run(run_dir)
    assert [name for name, _ in data.problems] == ["rank_000002.h5"]
    shutil.rmtree(run_dir.parent)
