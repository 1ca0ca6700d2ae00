"""yprov4ml_hpc: MPI-aware provenance for machine-learning jobs on HPC systems.

Drop-in for yProv4ML user code::

    import yprov4ml_hpc as prov4ml

    prov4ml.start_run("mnist", provenance_save_dir="prov")
    prov4ml.log_param("lr", 1e-3)
    for step in range(100):
        prov4ml.log_metric("loss", 0.5, context=prov4ml.Context.TRAINING, step=step)
    run_dir = prov4ml.end_run()

Offline, ``merge(run_dirs)`` writes the document of a run from its rank files and
``export(run_dir, format)`` converts it; ``load_run(run_dir)`` reads any run.

Importing this package loads only NumPy and h5py: MPI, NVML, codecarbon, matplotlib, prov
and networkx are imported by the features that need them.
"""

from ._api import (
    active_run,
    end_run,
    get_run_dir,
    log_artifact,
    log_carbon_metrics,
    log_current_execution_time,
    log_dataset,
    log_execution_command,
    log_execution_end_time,
    log_execution_start_time,
    log_metric,
    log_metrics,
    log_model,
    log_param,
    log_params,
    log_source_code,
    log_system_metrics,
    start_run,
)
from ._context import Context
from ._errors import (
    ArtifactNotFoundError,
    ConfigError,
    ConfigTypeError,
    DamagedRunError,
    MergeError,
    MissingDependencyError,
    RunStateError,
    SamplerUnavailableWarning,
    SeriesNotFoundError,
    StorageError,
    Yprov4mlError,
    Yprov4mlWarning,
)
from ._offline import export, merge
from ._reader import RankInfo, RunData, Series, load_run
from ._run import Run
from ._version import __version__

__all__ = [
    "ArtifactNotFoundError",
    "ConfigError",
    "ConfigTypeError",
    "Context",
    "DamagedRunError",
    "MergeError",
    "MissingDependencyError",
    "RankInfo",
    "Run",
    "RunData",
    "RunStateError",
    "SamplerUnavailableWarning",
    "Series",
    "SeriesNotFoundError",
    "StorageError",
    "Yprov4mlError",
    "Yprov4mlWarning",
    "__version__",
    "active_run",
    "end_run",
    "export",
    "get_run_dir",
    "load_run",
    "log_artifact",
    "log_carbon_metrics",
    "log_current_execution_time",
    "log_dataset",
    "log_execution_command",
    "log_execution_end_time",
    "log_execution_start_time",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_source_code",
    "log_system_metrics",
    "merge",
    "start_run",
]
