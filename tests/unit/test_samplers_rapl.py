"""RAPL package energy, on a powercap tree laid out like /sys/class/powercap."""

from __future__ import annotations

from pathlib import Path

import pytest

from yprov4ml_hpc._samplers._rapl import POWERCAP_ROOT, RaplSampler

RANGE_UJ = 262_143_328_850


def _zone(root: Path, name: str, label: str, energy_uj: int) -> Path:
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "name").write_text(f"{label}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{RANGE_UJ}\n")
    return zone


def _set(zone: Path, energy_uj: int) -> None:
    (zone / "energy_uj").write_text(f"{energy_uj}\n")


def test_packages_are_counted_and_subzones_and_psys_are_not(tmp_path: Path) -> None:
    pkg0 = _zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    pkg1 = _zone(tmp_path, "intel-rapl:1", "package-1", 5_000_000)
    core = _zone(tmp_path, "intel-rapl:0:0", "core", 0)  # inside package 0: would double count
    _zone(tmp_path, "intel-rapl:2", "psys", 0)  # the whole platform: would double count
    _zone(tmp_path, "intel-rapl-mmio:0", "package-0", 0)  # the same package through MMIO
    sampler, why = RaplSampler.open(tmp_path)
    assert why is None and sampler is not None
    assert sampler.methods == {"rapl/package0_energy_j": "rapl", "rapl/package1_energy_j": "rapl"}
    _set(pkg0, 3_500_000)
    _set(pkg1, 5_250_000)
    _set(core, 999_999_999)
    assert sampler.read_energy() == {"rapl/package0_energy_j": 2.5, "rapl/package1_energy_j": 0.25}


def test_counter_wrap_around_is_handled(tmp_path: Path) -> None:
    pkg0 = _zone(tmp_path, "intel-rapl:0", "package-0", RANGE_UJ - 1_000_000)
    sampler, _ = RaplSampler.open(tmp_path)
    assert sampler is not None
    _set(pkg0, 2_000_000)  # wrapped once: 1 J before the top + 2 J after it
    assert sampler.read_energy() == {"rapl/package0_energy_j": 3.0}
    _set(pkg0, 4_000_000)
    assert sampler.read_energy() == {"rapl/package0_energy_j": 5.0}


def test_no_rapl_is_silent(tmp_path: Path) -> None:
    assert RaplSampler.open(tmp_path / "absent") == (None, None)
    assert RaplSampler.open(tmp_path) == (None, None)


def test_unreadable_counters_say_why(tmp_path: Path) -> None:
    zone = _zone(tmp_path, "intel-rapl:0", "package-0", 0)
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()  # reading it fails with an OSError, even as root
    sampler, why = RaplSampler.open(tmp_path)
    assert sampler is None
    assert why is not None and "cannot be read" in why and str(tmp_path) in why


@pytest.mark.skipif(not POWERCAP_ROOT.is_dir(), reason="this machine has no /sys/class/powercap")
def test_this_machine_opens_or_explains() -> None:
    sampler, why = RaplSampler.open()
    if sampler is not None:
        assert all(v >= 0 for v in sampler.read_energy().values())
    else:
        assert why is None or "cannot be read" in why
