"""A PyTorch Lightning logger that records into yprov4ml_hpc, on every rank.

    from yprov4ml_hpc.integrations.lightning import Yprov4mlLogger
    trainer = L.Trainer(logger=Yprov4mlLogger("mnist", provenance_save_dir="prov"), ...)

Unlike most Lightning loggers it is not rank-zero-only: every rank writes its own rank file
(its loss, its throughput), and ``finalize`` merges them into one document per job, as
``end_run`` does.  Rank and run directory come from the launcher (srun, mpirun, torchrun)
when there is one; with Lightning's own launcher (``devices=N`` started from a plain
``python train.py``), the processes it starts inherit a run id that the first process puts
in ``YPROV4ML_HPC_LIGHTNING_RUN_ID``.  An already active run (``start_run`` called by the
script) is used as is and left for the script to end.

Lightning is imported when this module is (``lightning``, or the older ``pytorch_lightning``
if that is what the script uses); ``import yprov4ml_hpc`` never imports it.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _api
from .. import _constants as C
from .._errors import MissingDependencyError, Yprov4mlWarning
from .._run import Run
from .._rundir import fresh_run_id

__all__ = ["ENV_RUN_ID", "ProvMLLogger", "Yprov4mlLogger", "context_of"]

#: Shared run id for the processes of Lightning's own launcher (they inherit the environment).
ENV_RUN_ID = C.ENV_LIGHTNING_RUN_ID

# With one of these set, a launcher placed the process; start_run detects rank and world itself.
_LAUNCHER_VARS = (*C.MPI_RANK_VARS, C.TORCH_RANK_VAR, C.SLURM_STEP_VAR)


def _import_lightning() -> tuple[Any, Any]:
    """(Logger base class, rank_zero_only) of the Lightning the script uses."""
    packages = ["lightning.pytorch", "pytorch_lightning"]
    if "pytorch_lightning" in sys.modules and "lightning" not in sys.modules:
        packages.reverse()  # the Trainer checks isinstance against its own package's Logger
    for package in packages:
        try:
            loggers = importlib.import_module(f"{package}.loggers.logger")
            rank_zero = importlib.import_module(f"{package}.utilities.rank_zero")
        except ImportError:
            continue
        return loggers.Logger, rank_zero.rank_zero_only
    raise MissingDependencyError(
        "yprov4ml_hpc.integrations.lightning needs PyTorch Lightning, which is not installed; "
        "install it with: pip install lightning"
    )


_lightning_logger, _rank_zero_only = _import_lightning()
if TYPE_CHECKING:
    _LoggerBase = object  # the real base is whichever Lightning is installed, unknown to mypy
else:
    _LoggerBase = _lightning_logger

_CONTEXTS = (
    (("train", "training"), "training"),
    (("val", "valid", "validation"), "validation"),
    (("test", "testing"), "testing"),
    (("predict", "prediction"), "inference"),
)


def context_of(key: str, default: str = "training") -> str:
    """The yProv4ML context of a Lightning metric name: ``val_loss`` -> validation, ..."""
    head = re.split(r"[/_.\-]", key.lower().lstrip("/"), maxsplit=1)[0]
    for prefixes, context in _CONTEXTS:
        if head in prefixes:
            return context
    return default


def _flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in params.items():
        name = f"{prefix}{key}"
        value = vars(raw) if isinstance(raw, Namespace) else raw
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}/"))
        else:
            out[name] = value
    return out


class Yprov4mlLogger(_LoggerBase):
    """Lightning logger writing params and metrics of every rank into a yprov4ml_hpc run.

    ``context``: a fixed context for every metric; by default it follows the metric name
    (``train_*`` training, ``val_*`` validation, ``test_*`` testing, else ``training``).
    ``end_on_finalize``: ``finalize`` (end of ``fit``) ends the run and writes the job's
    document; pass False to log ``trainer.test`` into the same run, then call
    :meth:`end_run`.  ``log_checkpoints``: record the checkpoints Lightning saves (path and
    sha256, no copy).  Other keyword arguments go to :func:`yprov4ml_hpc.start_run`.
    """

    def __init__(
        self,
        experiment_name: str = "lightning",
        provenance_save_dir: str | os.PathLike[str] | None = None,
        run_id: str | None = None,
        *,
        context: str | None = None,
        end_on_finalize: bool = True,
        log_checkpoints: bool = False,
        **start_run_kwargs: Any,
    ) -> None:
        super().__init__()
        self._experiment_name = experiment_name
        self._save_dir = provenance_save_dir
        self._run_id = run_id
        self._fixed_context = context
        self._end_on_finalize = end_on_finalize
        self._log_checkpoints = log_checkpoints
        self._start_kwargs = start_run_kwargs
        self._run: Run | None = None
        self._owns_run = False
        self._ended = False
        self._set_env = False
        self._warned: set[str] = set()
        if run_id is None and not any(v in os.environ for v in _LAUNCHER_VARS):
            # Lightning's own launcher re-runs this script N-1 times with our environment:
            # the first process picks the id, the others find it.
            if ENV_RUN_ID not in os.environ:
                os.environ[ENV_RUN_ID] = fresh_run_id()
                self._set_env = True
            self._shared_run_id: str | None = os.environ[ENV_RUN_ID]
        else:
            self._shared_run_id = None

    # --- Lightning's Logger interface -------------------------------------------------------
    @property
    def name(self) -> str:
        return self._experiment_name

    @property
    def version(self) -> str | None:
        if self._run is not None:
            return self._run.run_id
        return self._run_id or self._shared_run_id

    @property
    def save_dir(self) -> str | None:
        # None: Lightning keeps checkpoints under its default_root_dir, not in the prov folder.
        return None

    @property
    def experiment(self) -> Run:
        """The yprov4ml_hpc :class:`~yprov4ml_hpc.Run` of this rank (started on first use)."""
        return self._ensure_run()

    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        run = self._live_run("log_hyperparams")
        if run is None:
            return
        values = vars(params) if isinstance(params, Namespace) else dict(params or {})
        for name, value in _flatten(values).items():
            try:
                run.log_param(name, value)
            except (TypeError, ValueError):
                run.log_param(name, repr(value))  # a class, a dtype, ...: keep what it was

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        run = self._live_run("log_metrics")
        if run is None:
            return
        for key, value in metrics.items():
            number = float(value.item() if hasattr(value, "item") else value)
            context = self._fixed_context or context_of(key)
            run.log_metric(key, number, context=context, step=step)

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        """Not recorded (the model's summary goes in with ``log_model``)."""

    def save(self) -> None:
        """Nothing to do: the rank file is flushed by the collector's own timer."""

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if not self._log_checkpoints:
            return
        run = self._live_run("after_save_checkpoint")
        path = getattr(checkpoint_callback, "last_model_path", "") or getattr(
            checkpoint_callback, "best_model_path", ""
        )
        if run is not None and path and Path(path).is_file():
            run.log_artifact(
                f"checkpoints/{Path(path).name}", path, log_copy_in_prov_directory=False, is_model=True
            )

    def finalize(self, status: str) -> None:
        """End of fit: end the run (unless ``end_on_finalize=False``) and merge the job's files.

        ``status`` 'failed' closes this rank's file as failed without waiting for the other
        ranks; ``yprov4ml-hpc merge`` then makes the document from the files.
        """
        if self._end_on_finalize:
            self.end_run(failed=status == C.STATUS_FAILED)

    # --- ours ---------------------------------------------------------------------------------
    def end_run(self, failed: bool = False) -> Path | None:
        """End the run this logger started (a run the script started is the script's to end)."""
        run = self._run
        if run is None or self._ended:
            return None if run is None else run.run_dir
        if self._set_env:
            self._set_env = False
            os.environ.pop(ENV_RUN_ID, None)  # a later logger in this process starts a new run
        if not self._owns_run:
            # The script's run: it stays open (trainer.test() after fit still records into it,
            # as with upstream's logger) until the script's own end_run.
            return run.run_dir
        self._ended = True
        if failed:
            return run.end(C.STATUS_FAILED, "lightning finalize(failed)")
        return run.end(C.STATUS_FINISHED, "lightning finalize")

    def _live_run(self, what: str) -> Run | None:
        if self._ended:
            self._warn_once(
                what,
                f"Yprov4mlLogger.{what} after the run ended (finalize at the end of fit): not "
                "recorded; pass end_on_finalize=False and call logger.end_run() at the end",
            )
            return None
        if self._run is not None and not self._owns_run and self._run.ended:
            self._warn_once(
                what, f"Yprov4mlLogger.{what} after the script's end_run(): not recorded"
            )
            return None
        return self._ensure_run()

    def _warn_once(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            warnings.warn(message, Yprov4mlWarning, stacklevel=4)

    def _ensure_run(self) -> Run:
        if self._run is not None:
            return self._run
        active = _api.active_run()
        if active is not None:
            self._run, self._owns_run = active, False
            return active
        kwargs: dict[str, Any] = dict(self._start_kwargs)
        run_id = self._run_id
        if self._shared_run_id is not None:
            world = int(os.environ.get(C.TORCH_SIZE_VAR, "1") or 1)
            if world > 1:
                # Lightning's launcher: its processes know their global rank, not MPI's.
                kwargs["rank"] = int(getattr(_rank_zero_only, "rank", 0) or 0)
                run_id = run_id or self._shared_run_id
        self._run = _api.start_run(
            self._experiment_name, provenance_save_dir=self._save_dir, run_id=run_id, **kwargs
        )
        self._owns_run = True
        return self._run


def _upstream_context(key: str) -> str:
    """yProv4ML's ProvMLLogger rule: 'test'/'evaluation' -> testing, 'validation' -> validation."""
    lowered = key.lower()
    if "evaluation" in lowered or "test" in lowered:
        return "testing"
    if "validation" in lowered:
        return "validation"
    return context_of(key)


class ProvMLLogger(Yprov4mlLogger):
    """yProv4ML's Lightning logger, with its parameters and order.

    ``ProvMLLogger(name="lightning_logs", version=None, prefix="", flush_logs_every_n_steps=100)``:
    it records into the run the script started with ``start_run`` (and leaves it for the
    script's ``end_run``); without one it starts a run named ``name``.  ``prefix`` is put
    before every metric name, as Lightning's loggers do; ``flush_logs_every_n_steps`` is
    accepted and ignored (rank files flush by size and timer).  Metric contexts follow
    yProv4ML's rule (names with 'test'/'evaluation' -> testing, 'validation' -> validation),
    then ours (``val_``/``train_`` prefixes).
    """

    def __init__(
        self,
        name: str | None = "lightning_logs",
        version: int | str | None = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        super().__init__(name or "lightning_logs", end_on_finalize=True)
        self._upstream_version = version
        self._prefix = prefix or ""
        self._flush_logs_every_n_steps = flush_logs_every_n_steps

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        run = self._live_run("log_metrics")
        if run is None:
            return
        for key, value in metrics.items():
            number = float(value.item() if hasattr(value, "item") else value)
            name = f"{self._prefix}-{key}" if self._prefix else key
            run.log_metric(name, number, context=self._fixed_context or _upstream_context(key), step=step)
