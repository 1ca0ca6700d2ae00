"""Energy accounting of a job: one rule for summary.json and the PROV document.

Each energy series is cumulative, so a rank's figure is its last finite value.  A node's
energy is codecarbon's whole-machine figure where the node has one (it already covers CPU,
GPU and RAM), else the sum of its devices' NVML GPU and RAPL counters (a GPU seen by two
ranks, same UUID, counted once); the job's total sums the nodes.  Emissions are codecarbon's
(per node, summed for the job).  Every figure comes with the method that produced it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .. import _constants as C
from .._reader import RankMeta, RunData

__all__ = ["JobEnergy", "NodeEnergy", "TOTAL_RULE", "energy_figures", "job_energy", "rank_energy"]

_GPU_ENERGY = re.compile(r"^gpu\d+/energy_j$")
_RAPL_ENERGY = re.compile(r"^rapl/package\d+_energy_j$")
_CC_ENERGY = "codecarbon/energy_j"
_CC_EMISSIONS = "codecarbon/emissions_kg"
_DEFAULT_METHODS = (("gpu", "nvml"), ("rapl/", "rapl"), ("codecarbon/", "codecarbon"))
TOTAL_RULE = "per node: codecarbon where present, else NVML GPU + RAPL counters; total: sum of nodes"


@dataclass
class NodeEnergy:
    """One node's figures; ``None`` where nothing on the node measured it."""

    energy_j: float | None = None
    energy_method: str | None = None
    emissions_kg: float | None = None
    emissions_method: str | None = None


@dataclass
class JobEnergy:
    """The job's figures: per node, totals, and the method behind each measured series."""

    nodes: dict[str, NodeEnergy] = field(default_factory=dict)  # host -> figures, sorted
    series_methods: dict[str, set[str]] = field(default_factory=dict)  # series name -> methods

    @property
    def total_j(self) -> float | None:
        measured = [n.energy_j for n in self.nodes.values() if n.energy_j is not None]
        return sum(measured) if measured else None

    @property
    def emissions_kg(self) -> float | None:
        measured = [n.emissions_kg for n in self.nodes.values() if n.emissions_kg is not None]
        return sum(measured) if measured else None

    def method_of(self, attribute: str) -> str | None:
        """The methods behind the job's total ``energy_method``/``emissions_method``."""
        found = sorted({getattr(n, attribute) for n in self.nodes.values()} - {None})
        return "; ".join(found) if found else None


def energy_figures(meta: RankMeta) -> dict[str, float]:
    """Series name -> last finite value of one rank's ``energy`` context."""
    energy = C.ENERGY_CONTEXT  # a local: this runs for every series of every rank, twice
    return {
        s.name: s.stats.last_finite
        for s in meta.series
        if s.context == energy and s.stats is not None and s.stats.last_finite is not None
    }


def rank_energy(figures: dict[str, float]) -> float | None:
    """What one rank measured, by the node rule (codecarbon, else its counters)."""
    if _CC_ENERGY in figures:
        return figures[_CC_ENERGY]
    counters = [v for k, v in figures.items() if _GPU_ENERGY.match(k) or _RAPL_ENERGY.match(k)]
    return sum(counters) if counters else None


def _device_counters(meta: RankMeta, figures: dict[str, float]) -> dict[str, float]:
    """NVML GPU and RAPL counter figures of one rank, keyed by the device they measure.

    A GPU is named by its UUID where the sampler recorded one (two ranks that both see the
    node's GPU 0 through ``CUDA_VISIBLE_DEVICES`` measure the same device), else by its index.
    """
    uuids = meta.attrs.sampler_info.get("gpu_uuids")
    uuids = uuids if isinstance(uuids, dict) else {}
    out: dict[str, float] = {}
    for name, value in figures.items():
        if _GPU_ENERGY.match(name):
            index = name.split("/", 1)[0][3:]
            out[f"gpu:{uuids.get(index) or index}"] = value
        elif _RAPL_ENERGY.match(name):
            out[name] = value
    return out


def _emissions_method(method: str, meta: RankMeta) -> str:
    """codecarbon's estimate depends on the grid it assumed: name the country."""
    country = meta.attrs.sampler_info.get("carbon_country_iso_code")
    return f"{method} (grid: {country})" if isinstance(country, str) and country else method


def job_energy(run: RunData) -> JobEnergy:
    """The energy and emissions of one run, per node and in total, with their methods."""
    out = JobEnergy()
    cc: dict[str, float] = {}
    cc_methods: dict[str, set[str]] = {}
    emissions: dict[str, float] = {}
    emission_methods: dict[str, set[str]] = {}
    devices: dict[str, dict[str, float]] = {}  # host -> {device key: J}
    device_methods: dict[str, set[str]] = {}
    for meta in run.metas.values():
        figures = energy_figures(meta)
        if not figures:
            continue
        host = meta.attrs.host
        declared = meta.attrs.energy_methods
        methods = {}
        for name in figures:
            default = next((m for prefix, m in _DEFAULT_METHODS if name.startswith(prefix)), "unknown")
            methods[name] = str(declared.get(name, default))
            out.series_methods.setdefault(name, set()).add(methods[name])
        if _CC_ENERGY in figures:
            cc[host] = cc.get(host, 0.0) + figures[_CC_ENERGY]
            cc_methods.setdefault(host, set()).add(methods[_CC_ENERGY])
        if _CC_EMISSIONS in figures:
            emissions[host] = emissions.get(host, 0.0) + figures[_CC_EMISSIONS]
            emission_methods.setdefault(host, set()).add(_emissions_method(methods[_CC_EMISSIONS], meta))
        node_devices = devices.setdefault(host, {})
        for key, value in _device_counters(meta, figures).items():
            # Ranks sharing one visible GPU all measure it: count each device once.
            node_devices[key] = max(value, node_devices.get(key, value))
        counter_names = [n for n in figures if _GPU_ENERGY.match(n) or _RAPL_ENERGY.match(n)]
        device_methods.setdefault(host, set()).update(methods[n] for n in counter_names)
    for host in sorted(set(cc) | set(emissions) | {h for h, d in devices.items() if d}):
        node = NodeEnergy()
        if host in cc:
            node.energy_j, node.energy_method = cc[host], " + ".join(sorted(cc_methods[host]))
        elif devices.get(host):
            node.energy_j = sum(devices[host].values())
            node.energy_method = " + ".join(sorted(device_methods[host]))
        if host in emissions:
            node.emissions_kg = emissions[host]
            node.emissions_method = " + ".join(sorted(emission_methods[host]))
        out.nodes[host] = node
    return out
