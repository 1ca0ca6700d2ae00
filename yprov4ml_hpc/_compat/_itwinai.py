"""``ProvMLItwinAILogger``: yProv4ML's logger for itwinai, recording into yprov4ml_hpc.

When itwinai is installed the class derives from ``itwinai.loggers.Logger``; otherwise from
:class:`ItwinaiLoggerBase`, a small stand-in with the same interface (``log_freq``,
``log_on_workers``, ``start_logging``, ``should_log``, ``serialize``), so scripts and tests
run without it.

One difference on purpose: ``create_logger_context``/``destroy_logger_context`` start and
end the run on EVERY rank, also those that ``log_on_workers`` excludes from logging.  Our run
directory and finalize are collective over the job; a rank that skipped them would leave the
others waiting.  Excluded ranks appear in the summary with no data of their own.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .. import _api
from .._errors import ConfigError
from . import _functions as F

__all__ = ["ItwinaiLoggerBase", "ProvMLItwinAILogger"]


class ItwinaiLoggerBase:
    """The parts of ``itwinai.loggers.Logger`` that ProvMLItwinAILogger relies on."""

    supported_kinds: tuple[str, ...] = ()

    def __init__(
        self, savedir: str = "mllogs", log_freq: int | str = "epoch", log_on_workers: int | list[int] = 0
    ) -> None:
        self.savedir = savedir
        self.log_freq = log_freq
        self.log_on_workers = log_on_workers
        self.worker_rank: int | None = None

    @property
    def log_freq(self) -> int | str:
        return self._log_freq

    @log_freq.setter
    def log_freq(self, value: int | str) -> None:
        if value in ("epoch", "batch") or (
            isinstance(value, int) and not isinstance(value, bool) and value > 0
        ):
            self._log_freq = value
        else:
            raise ConfigError(f"log_freq must be 'epoch', 'batch' or an int > 0, got {value!r}")

    @contextlib.contextmanager
    def start_logging(self, rank: int | None = None) -> Iterator[None]:
        try:
            self.create_logger_context(rank=rank)
            yield
        finally:
            self.destroy_logger_context()

    def create_logger_context(self, rank: int | None = None) -> Any:
        raise NotImplementedError

    def destroy_logger_context(self) -> None:
        raise NotImplementedError

    def serialize(self, obj: Any, identifier: str) -> str:
        path = os.path.join(self.savedir, identifier)
        with open(path, "wb") as handle:
            pickle.dump(obj, handle)
        return path

    def should_log(self, batch_idx: int | None = None) -> bool:
        rank, workers = self.worker_rank, self.log_on_workers
        worker_ok = (
            rank is None
            or (isinstance(workers, int) and workers in (-1, rank))
            or (isinstance(workers, list) and rank in workers)
        )
        if not worker_ok:
            return False
        if batch_idx is not None:
            if isinstance(self.log_freq, int):
                return batch_idx % self.log_freq == 0
            return self.log_freq == "batch"
        return True


def _itwinai_base() -> type:
    try:
        from itwinai.loggers import Logger
    except Exception:  # noqa: BLE001 - not installed, or itwinai failing to import its own deps
        return ItwinaiLoggerBase
    return Logger


if TYPE_CHECKING:
    _Base = ItwinaiLoggerBase
else:
    _Base = _itwinai_base()


class ProvMLItwinAILogger(_Base):
    """itwinai logger writing into this rank's yprov4ml_hpc run; yProv4ML's parameters and order."""

    supported_kinds: tuple[str, ...] = (
        "metric",
        "flops_pb",
        "flops_pe",
        "system",
        "carbon",
        "execution_time",
        "model",
        "best_model",
        "torch",
    )

    def __init__(
        self,
        prov_user_namespace: str = "www.example.org",
        experiment_name: str = "experiment_name",
        provenance_save_dir: str = "mllogs",
        save_after_n_logs: int | None = 100,
        create_graph: bool | None = True,
        create_svg: bool | None = True,
        log_freq: int | str = "epoch",
        log_on_workers: int | list[int] = 0,
    ) -> None:
        super().__init__(savedir=provenance_save_dir, log_freq=log_freq, log_on_workers=log_on_workers)
        self.name = experiment_name
        self.version = None
        self.prov_user_namespace = prov_user_namespace
        self.provenance_save_dir = provenance_save_dir
        self.save_after_n_logs = save_after_n_logs
        self.create_graph = create_graph
        self.create_svg = create_svg
        self.worker_rank = None

    def create_logger_context(self, rank: int | None = None) -> Any:
        """Start the run (on every rank: see the module docstring)."""
        self.worker_rank = rank
        return _api.start_run(
            self.name,
            self.prov_user_namespace,
            self.provenance_save_dir,
            True,
            self.save_after_n_logs,
            rank,
        )

    def destroy_logger_context(self) -> None:
        """End the run and write the job's document (every rank)."""
        _api.end_run(bool(self.create_graph), bool(self.create_svg))

    def save_hyperparameters(self, params: Mapping[str, Any]) -> None:
        if not self.should_log():
            return
        for name, value in params.items():
            _api.log_param(name, value)

    def log(
        self,
        item: Any,
        identifier: Any,
        kind: str = "metric",
        step: int | None = None,
        batch_idx: int | None = None,
        context: object = "training",
        **kwargs: Any,
    ) -> None:
        """Record ``item`` as ``kind`` (one of :attr:`supported_kinds`)."""
        if not self.should_log(batch_idx=batch_idx):
            return
        if kind == "metric":
            _api.log_metric(identifier, item, context, step)
        elif kind == "flops_pb":
            model, batch = item
            F.log_flops_per_batch(identifier, model, batch, context, step)
        elif kind == "flops_pe":
            model, dataset = item
            F.log_flops_per_epoch(identifier, model, dataset, context, step)
        elif kind == "system":
            _api.log_system_metrics(context, step)
        elif kind == "carbon":
            _api.log_carbon_metrics(context, step)
        elif kind == "execution_time":
            _api.log_current_execution_time(identifier, context, step)
        elif kind == "model":
            F.save_model_version(identifier, item, context, step=step)
        elif kind == "best_model":
            _api.log_model(identifier, item, log_model_info=True, log_model_layers=False, is_input=False)
        elif kind == "torch":
            if type(item).__name__ == "DataLoader":
                _api.log_dataset(identifier, item)
            else:
                _api.log_param(identifier, item)
        else:
            raise ConfigError(f"ProvMLItwinAILogger.log: kind {kind!r} is not one of {self.supported_kinds}")
