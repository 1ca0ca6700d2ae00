"""Background samplers of one rank: psutil, NVML, RAPL and codecarbon (issue 4).

The Run creates one :class:`SamplerSet` per rank with a ``record`` callback and calls
``start()`` / ``sample_now()`` / ``sample_carbon_now()`` / ``stop()``. Series (name, context):

- ``gpu``: ``gpu{i}/power_w``, ``gpu{i}/utilization_pct``, ``gpu{i}/memory_utilization_pct``,
  ``gpu{i}/memory_used_bytes``, ``gpu{i}/temperature_c``, ``gpu{i}/sm_clock_mhz`` and, where the
  GPU supports it, ``gpu{i}/fan_speed_pct`` (i = NVML index, for the GPUs this rank owns);
- ``energy`` (cumulative since start): ``gpu{i}/energy_j``, ``rapl/package{n}_energy_j``,
  ``codecarbon/energy_j``, ``codecarbon/emissions_kg`` (RAPL and codecarbon: node leader only);
- ``system``: ``process/cpu_pct``, ``process/rss_bytes`` (every rank); ``node/cpu_pct``,
  ``node/memory_used_bytes``, ``node/memory_pct``, ``node/disk_read_bytes``,
  ``node/disk_write_bytes``, ``node/net_sent_bytes``, ``node/net_recv_bytes`` (node leader).

Importing this package imports psutil only; pynvml and codecarbon are imported when used.
"""

from yprov4ml_hpc._samplers._carbon import DEFAULT_COUNTRY_ISO_CODE
from yprov4ml_hpc._samplers._nvml import owned_gpus
from yprov4ml_hpc._samplers._thread import (
    CONTEXT_ENERGY,
    CONTEXT_GPU,
    CONTEXT_SYSTEM,
    Record,
    SamplerSet,
)

__all__ = [
    "CONTEXT_ENERGY",
    "CONTEXT_GPU",
    "CONTEXT_SYSTEM",
    "DEFAULT_COUNTRY_ISO_CODE",
    "Record",
    "SamplerSet",
    "owned_gpus",
]
