"""Names the rank file cannot hold, refused (or shortened) at the call, never failing later.

What may be lost: only the refused call; the run goes on and the other series are intact.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import yprov4ml_hpc as prov4ml

QUIET = {"flush_interval_s": 0, "system_metrics_interval_s": 0, "install_signal_handlers": False}


def test_nul_in_names_is_refused_at_the_call(tmp_path: Path) -> None:
    """NUL cannot be stored in HDF5: metric, param and artifact names with it raise ValueError."""
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("nul", provenance_save_dir=tmp_path / "save", **QUIET)
        for call in (lambda: prov4ml.log_metric("a\x00b", 1.0), lambda: prov4ml.log_param("a\x00b", 1),
                     lambda: prov4ml.log_artifact("a\x00b", source)):
            with pytest.raises(ValueError, match="NUL"):
                call()
        prov4ml.log_metric("fine", 1.0)
        prov4ml.end_run()
    assert prov4ml.load_run(run.run_dir).series("fine").value.tolist() == [1.0]


@pytest.mark.parametrize("kind", ["metric", "context", "param_name", "param_value", "artifact"])
def test_lone_surrogates_are_refused_or_kept(tmp_path: Path, kind: str) -> None:
    """A str that UTF-8 cannot encode ('\\ud800') is either refused with ValueError when logged,
    or stored so that it reads back exactly; either way the run goes on (the next flush and
    end_run work, the other series are intact)."""
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    bad = "bad\ud800name"
    calls = {
        "metric": lambda: prov4ml.log_metric(bad, 1.0),
        "context": lambda: prov4ml.log_metric("m", 1.0, context=bad),
        "param_name": lambda: prov4ml.log_param(bad, 1),
        "param_value": lambda: prov4ml.log_param("p", bad),
        "artifact": lambda: prov4ml.log_artifact(bad, source),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("surrogate", provenance_save_dir=tmp_path / "save", **QUIET)
        prov4ml.log_metric("fine", 1.0)
        try:
            calls[kind]()
            accepted = True
        except ValueError:
            accepted = False
        run.flush()
        prov4ml.end_run()
    data = prov4ml.load_run(run.run_dir)
    assert data.series("fine").value.tolist() == [1.0]
    if accepted:
        kept = {
            "metric": (bad, "default", 0) in data.series_keys(),
            "context": ("m", bad, 0) in data.series_keys(),
            "param_name": data.params().get(bad) == 1,
            "param_value": data.params().get("p") == bad,
            "artifact": any(a["name"] == bad for a in data.artifacts()),
        }[kind]
        assert kept, f"{kind}: accepted but not read back"


@pytest.mark.parametrize("name", ["a" * 300, "é" * 200, "d/" * 3000 + "z"],
                         ids=["component_300_bytes", "component_400_utf8_bytes", "path_6000_bytes"])
def test_overlong_artifact_names_fail_cleanly(tmp_path: Path, name: str) -> None:
    """Names the file system cannot hold are stored under a shortened name, or refused with a
    Yprov4mlError (ConfigError/StorageError) that says why; never a bare OSError."""
    source = tmp_path / "f.bin"
    source.write_bytes(b"x")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = prov4ml.start_run("long", provenance_save_dir=tmp_path / "save", **QUIET)
        try:
            record = prov4ml.log_artifact(name, source)
        except prov4ml.Yprov4mlError:
            pass
        else:
            assert record["name"] == name
            assert (run.run_dir / str(record["path"])).read_bytes() == b"x"
        finally:
            prov4ml.end_run()
