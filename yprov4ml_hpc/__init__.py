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
and networkx are imported by the features that need them.  yProv4ML's torch wrappers
(``ProvenanceTrackedModel``, ``WeightDistributionTrackedModel``), its Lightning and itwinai
loggers and its getters are attributes loaded on first use (see ``_LAZY``).
"""

import importlib as _importlib
from typing import Any as _Any

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
from ._compat._enums import CompressorType, Contexts, FoldOperation, LoggingItemKind, MetricsType
from ._compat._functions import (
    create_context,
    get_artifacts_dir,
    log_context,
    log_flops_per_batch,
    log_flops_per_epoch,
    log_input,
    log_output,
    log_provenance_documents,
    register_final_metric,
    save_model_version,
)
from ._compat._wrappers import ProvenanceTrackedFunction
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
    "CompressorType",
    "ConfigError",
    "ConfigTypeError",
    "Context",
    "Contexts",
    "DamagedRunError",
    "FoldOperation",
    "LoggingItemKind",
    "MergeError",
    "MetricsType",
    "MissingDependencyError",
    "ProvenanceTrackedFunction",
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
    "create_context",
    "end_run",
    "export",
    "get_artifacts_dir",
    "get_run_dir",
    "load_run",
    "log_artifact",
    "log_carbon_metrics",
    "log_context",
    "log_current_execution_time",
    "log_dataset",
    "log_execution_command",
    "log_execution_end_time",
    "log_execution_start_time",
    "log_flops_per_batch",
    "log_flops_per_epoch",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_output",
    "log_param",
    "log_params",
    "log_provenance_documents",
    "log_source_code",
    "log_system_metrics",
    "merge",
    "register_final_metric",
    "save_model_version",
    "start_run",
]

# Names yProv4ML exports whose modules import torch, Lightning, itwinai or pandas'
# neighbours: loaded on first attribute access, so `import yprov4ml_hpc` stays light.
# They are not in __all__: a star import must not pull in torch.
_LAZY = {
    "ProvenanceTrackedModel": ("._compat._torch_models", "ProvenanceTrackedModel"),
    "WeightDistributionTrackedModel": ("._compat._torch_models", "WeightDistributionTrackedModel"),
    "ProvMLLogger": (".integrations.lightning", "ProvMLLogger"),
    "ProvMLItwinAILogger": ("._compat._itwinai", "ProvMLItwinAILogger"),
    "getters": (".utils.getters", None),
    "prov_getters": (".utils.prov_getters", None),
    "utils": (".utils", None),
    # yProv4ML 3.x documents its getters at the top level too.
    "list_activities": (".utils.getters", "list_activities"),
    "list_entities": (".utils.getters", "list_entities"),
    "get_parameter": (".utils.getters", "get_parameter"),
    "list_parameters": (".utils.getters", "list_parameters"),
    "list_metrics": (".utils.getters", "list_metrics"),
    "list_metric_paths": (".utils.getters", "list_metric_paths"),
    "get_metric": (".utils.getters", "get_metric"),
    "list_runs_in_proj": (".utils.getters", "list_runs_in_proj"),
    "list_provjson_in_proj": (".utils.getters", "list_provjson_in_proj"),
}


def __getattr__(name: str) -> _Any:
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'yprov4ml_hpc' has no attribute {name!r}") from None
    module = _importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_LAZY})
