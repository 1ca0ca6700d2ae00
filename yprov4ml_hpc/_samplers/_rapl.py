"""CPU package energy from the Linux powercap RAPL counters (node leader only).

``/sys/class/powercap/intel-rapl:N/energy_uj`` is a per-socket counter in microjoules that
wraps at ``max_energy_range_uj`` (every few tens of minutes at full load), so it must be read
more often than that: the sampler thread reads it at every interval. The same driver serves
AMD Zen CPUs. Since Linux 5.10 the files are readable by root only; without them the CPU share
of energy comes from codecarbon's estimate alone.
"""

from __future__ import annotations

import re
from pathlib import Path

POWERCAP_ROOT = Path("/sys/class/powercap")
METHOD_RAPL = "rapl"

_TOP_ZONE = re.compile(r"intel-rapl:\d+")  # sub-zones (core, dram: intel-rapl:0:1) are inside
_PACKAGE = re.compile(r"package-(\d+)")  # the 'psys' zone spans the platform: not counted


class RaplSampler:
    """Cumulative energy (J) of each CPU package since the first read."""

    def __init__(self, zones: dict[int, Path]) -> None:
        self._zones = zones  # package number -> zone directory
        self._range_uj = {n: int((zone / "max_energy_range_uj").read_text()) for n, zone in zones.items()}
        self._last_uj = {n: self._read_uj(n) for n in zones}
        self._total_uj = dict.fromkeys(zones, 0)

    @classmethod
    def open(cls, root: Path = POWERCAP_ROOT) -> tuple[RaplSampler | None, str | None]:
        """``(sampler, None)``; ``(None, None)`` when the machine has no RAPL (nothing to say);
        ``(None, why)`` when the counters exist but cannot be read (permissions)."""
        zones: dict[int, Path] = {}
        try:
            for zone in sorted(root.iterdir()) if root.is_dir() else []:
                if not _TOP_ZONE.fullmatch(zone.name):
                    continue
                package = _PACKAGE.fullmatch((zone / "name").read_text().strip())
                if package is not None:
                    zones[int(package.group(1))] = zone
        except OSError:
            return None, None
        if not zones:
            return None, None
        try:
            return cls(zones), None
        except (OSError, ValueError) as exc:
            return None, (
                f"RAPL energy counters under {root} cannot be read ({exc}); they are root-only "
                "since Linux 5.10. CPU energy will come from codecarbon's estimate only"
            )

    @property
    def methods(self) -> dict[str, str]:
        return {f"rapl/package{n}_energy_j": METHOD_RAPL for n in self._zones}

    def _read_uj(self, package: int) -> int:
        return int((self._zones[package] / "energy_uj").read_text())

    def read_energy(self) -> dict[str, float]:
        for package in self._zones:
            now_uj = self._read_uj(package)
            delta = now_uj - self._last_uj[package]
            if delta < 0:  # the counter wrapped once since the last read
                delta += self._range_uj[package]
            self._total_uj[package] += delta
            self._last_uj[package] = now_uj
        return {f"rapl/package{n}_energy_j": uj / 1e6 for n, uj in self._total_uj.items()}
