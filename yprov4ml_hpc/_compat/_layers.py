"""``log_model(log_model_layers=True)``: a JSON description of a torch model's layers, stored
as an artifact of the calling rank.  Imports nothing of the facade (``_api`` calls it)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import ConfigError

if TYPE_CHECKING:
    from .._run import Run

__all__ = ["log_model_layers"]


def log_model_layers(run: Run, model_name: str, model: object, context: object) -> dict[str, object] | None:
    """``log_model(log_model_layers=True)``: a JSON description of the model's layers, as an artifact."""
    named_children = getattr(model, "named_children", None)
    if not callable(named_children):
        return None
    description = _describe_layers(model)
    target = run.artifacts_dir / "models" / f"{model_name}_layers_description.json"
    from .._artifacts import ensure_rank_dir

    ensure_rank_dir(run.artifacts_dir)
    target.parent.mkdir(exist_ok=True)
    try:
        target.write_text(json.dumps(description, indent=1, default=str), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write the layer description of {model_name!r} to {target}: {exc}") from exc
    return run.log_artifact(
        f"models/{model_name}_layers_description.json",
        target,
        context,
        None,
        log_copy_in_prov_directory=False,
    )


_LAYER_FIELDS: Sequence[str] = (
    "in_features",
    "out_features",
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "num_embeddings",
    "embedding_dim",
)


def _describe_layers(module: Any) -> dict[str, Any]:
    children = dict(module.named_children())
    if not children:
        node: dict[str, Any] = {"layer_type": type(module).__name__}
        for field in _LAYER_FIELDS:
            if hasattr(module, field):
                node[field] = getattr(module, field)
        weight = getattr(module, "weight", None)
        if weight is not None and hasattr(weight, "dtype"):
            node["dtype"] = str(weight.dtype)
        return node
    return {name: _describe_layers(child) for name, child in children.items()}
