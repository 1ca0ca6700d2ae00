"""The record-logging half of a Run: params, artifacts, models, datasets, source code, events.

Each call builds one JSON record and hands it to the rank's journal writer, then waits for the
flush, so a record is on disk (or kept and warned about) when the call returns.  These are the
cold paths; the metric hot path and the run's lifecycle live in ``_run.py``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import _constants as C
from ._context import Context, context_name
from ._describe import dataset_info, model_info
from ._errors import ArtifactNotFoundError, ConfigError, ConfigTypeError, StorageError
from ._journal import encode_record, json_default
from ._names import check_name
from ._values import param_record_value

if TYPE_CHECKING:
    from ._writer import JournalWriter
    from ._writer_process import ProcessJournalWriter

__all__ = ["RecordsMixin"]

_time_ns = time.time_ns


def _artifact_use(is_input: bool, kind: str, context: object, step: int | None) -> dict[str, object]:
    """The fields every artifact record ends with (a file's and an in-memory model's alike)."""
    return {
        "role": "input" if is_input else "output",
        "kind": kind,
        "context": context_name(context),
        "step": step,
        "time_ns": _time_ns(),
    }


class RecordsMixin:
    """Methods of :class:`yprov4ml_hpc._run.Run` that log records (mixed into it)."""

    # Set by Run.__init__.
    _writer: JournalWriter | ProcessJournalWriter
    _other_calls: int
    artifacts_dir: Path
    run_dir: Path

    def _check_open(self, what: str) -> None:  # Run's own check replaces this
        raise NotImplementedError

    @staticmethod
    def _record_text(record: dict[str, object]) -> str:
        return json.dumps(record, default=json_default, ensure_ascii=False)

    def _record(self, dataset: str, record: dict[str, object]) -> None:
        """Append a param/artifact/event record and flush, so it survives a crash."""
        self._check_open("logging")
        text = self._record_text(record)
        try:  # refused here, not at the flush that would then lose the batch and blame the disk
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            label = record.get("name", record.get("event"))
            raise ConfigError(
                f"{dataset} record {label!r}: a string in it contains {exc.object[exc.start : exc.end]!r}, "
                "a lone surrogate that UTF-8 (and so the rank file) cannot store; pass valid Unicode text"
            ) from None
        self._writer.enqueue(encode_record(dataset, text))
        self._other_calls += 1
        self._writer.flush()  # a record is on disk when the call returns (or kept and warned)

    # --- params, artifacts, models, datasets ------------------------------------------------------
    def log_param(
        self,
        key: str,
        value: object,
        context: object = None,
        *,
        source: str | None = None,
        is_input: bool = False,
    ) -> None:
        """Record a parameter; the value keeps its type (int, float, bool, str, None, list, dict)."""
        name = check_name("param name", key)
        stored, type_name = param_record_value(value)
        record: dict[str, object] = {
            "name": name,
            "value": stored,
            "type": type_name,
            "context": context_name(context),
            "time_ns": _time_ns(),
        }
        if source is not None:
            record["source"] = str(getattr(source, "value", source))
        if is_input:
            record["role"] = "input"
        try:
            json.dumps(record, allow_nan=True)
        except (TypeError, ValueError) as exc:
            why = f"value of type {type_name} cannot be stored: {exc}"
            raise ConfigTypeError(f"param {name!r}: {why}") from exc
        self._record(C.PARAMS_DATASET, record)

    def log_params(self, params: Mapping[str, object], context: object = None) -> None:
        if not isinstance(params, Mapping):
            raise ConfigTypeError(f"log_params takes a mapping of name -> value, got {type(params).__name__}")
        for key, value in params.items():
            self.log_param(key, value, context)

    def log_artifact(
        self,
        artifact_name: str | os.PathLike[str],
        artifact_path: str | os.PathLike[str] | None = None,
        context: object = None,
        step: int | None = None,
        log_copy_in_prov_directory: bool = True,
        is_model: bool = False,
        is_input: bool = False,
        kind: str = "artifact",
        *,
        subdirectory: str | None = None,
        extra: Mapping[str, object] | None = None,
    ) -> dict[str, object]:
        """Record a file or folder; by default a copy is kept under ``artifacts/rank_NNNNNN/``.

        The copy keeps the file's extension when ``artifact_name`` has none (``"weights"``
        for ``model.pt`` is stored as ``weights.pt``), under ``subdirectory`` if given.
        """
        if isinstance(artifact_path, Context) or artifact_path is None:
            # yProv4ML 2.x: log_artifact(path, context, ...): the name is the file name.
            context = artifact_path if artifact_path is not None else context
            artifact_path, artifact_name = artifact_name, Path(os.fspath(artifact_name)).name
        name = check_name("artifact name", os.fspath(artifact_name))
        source = Path(os.fspath(artifact_path))
        if not source.exists():
            raise ArtifactNotFoundError(
                f"artifact {name!r}: path {str(source)!r} does not exist; log it after it is written"
            )
        self._check_open("log_artifact")
        from ._artifacts import copy_artifact, file_digest  # shutil/hashlib: only when used

        if log_copy_in_prov_directory:
            copy_name = name
            if source.is_file() and source.suffix and not Path(name).suffix:
                copy_name = name + source.suffix
            if subdirectory:
                copy_name = f"{subdirectory}/{copy_name}"
            stored = copy_artifact(source, self.artifacts_dir, copy_name)
            location = stored.relative_to(self.run_dir).as_posix()
        else:
            stored, location = source, str(source.resolve())
        size, sha256 = file_digest(stored)
        record: dict[str, object] = {
            "name": name,
            "path": location,
            "copied": bool(log_copy_in_prov_directory),
            "source": str(source.resolve()),
            "size": size,
            "sha256": sha256,
            **_artifact_use(is_input, "model" if is_model else kind, context, step),
            **(extra or {}),
        }
        self._record(C.ARTIFACTS_DATASET, record)
        return record

    def log_model(
        self,
        model_name: str,
        model: object,
        context: object = None,
        step: int | None = None,
        is_input: bool = False,
        log_model_info: bool = True,
    ) -> dict[str, object]:
        """Record a model: a path is logged as a model artifact; a torch module is saved first."""
        check_name("model name", model_name)
        if isinstance(model, (str, os.PathLike)):
            return self.log_artifact(model_name, model, context, step, is_model=True, is_input=is_input)
        info = model_info(model) if log_model_info else {"type": type(model).__name__}
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(model, torch.nn.Module):
            self._check_open("log_model")
            target = self.artifacts_dir / "models" / f"{model_name}.pt"
            from ._artifacts import ensure_rank_dir

            ensure_rank_dir(self.artifacts_dir)  # never re-creates a deleted run directory
            try:
                target.parent.mkdir(exist_ok=True)
                torch.save(model.state_dict(), target)
            except OSError as exc:
                raise StorageError(f"cannot save model {model_name!r} to {target}: {exc}") from exc
            record = self.log_artifact(
                f"models/{model_name}.pt",
                target,
                context,
                step,
                log_copy_in_prov_directory=False,
                is_model=True,
                is_input=is_input,
            )
            self._record(C.EVENTS_DATASET, {"event": "model_info", "name": model_name, **info})
            return record
        record = {
            "name": model_name,
            "path": None,
            "size": None,
            "sha256": None,
            **_artifact_use(is_input, "model", context, step),
            **info,
        }
        self._record(C.ARTIFACTS_DATASET, record)
        return record

    def log_dataset(
        self, label: str, dataset: object, context: object = None, *, info: bool = True
    ) -> dict[str, object]:
        """Record a dataset or data loader: its type, and (``info``) length and loader settings."""
        name = check_name("dataset label", label)
        record: dict[str, object] = {
            "name": name,
            "path": None,
            "size": None,
            "sha256": None,
            "role": "input",
            "kind": "dataset",
            "context": context_name(context),
            "time_ns": _time_ns(),
            "type": type(dataset).__name__,
        }
        if info:
            record.update(dataset_info(dataset))
        self._record(C.ARTIFACTS_DATASET, record)
        return record

    def log_source_code(self, path: str | os.PathLike[str] | None = None) -> dict[str, object]:
        """Record which code ran: git commit (and dirty flag), else file hashes (never site-packages)."""
        if path is None:
            main = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else os.getcwd()
            path = Path(main).resolve().parent if Path(main).is_file() else Path(main)
        from ._sourcecode import describe_source

        info = describe_source(Path(os.fspath(path)))
        self.log_param("source_code", info)
        return info

    def log_event(self, event: str, **fields: object) -> None:
        """Record a named event (epoch boundary, checkpoint, ...) with a timestamp."""
        self._record(C.EVENTS_DATASET, {"event": check_name("event", event), "time_ns": _time_ns(), **fields})
