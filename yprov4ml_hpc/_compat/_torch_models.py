"""yProv4ML's torch model wrappers; this module imports torch, so it is loaded only on first use.

Upstream writes layer activations and weight statistics to zarr stores next to the script.
Here they become metric series of the calling rank, so they reach the job's document and
summary with every other rank's: one series per layer and statistic.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .. import _api
from .._errors import ConfigTypeError

__all__ = ["ProvenanceTrackedModel", "WeightDistributionTrackedModel"]

_ACTIVATION_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_WEIGHT_LAYERS = (
    nn.Linear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Embedding,
    nn.LayerNorm,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
)
_QUANTILE_MAX = 1 << 24  # torch.quantile's input limit: larger tensors are sampled evenly


class ProvenanceTrackedModel(nn.Module):
    """Wrap ``model``; every forward of a Linear/Conv layer logs its input and output statistics.

    Accepts upstream's two forms: ``ProvenanceTrackedModel(model)`` (current examples) and
    ``ProvenanceTrackedModel(model_label, model, context=None, chunk_size=64)`` (3.2.x).
    Series ``<label>/<layer>/{input,output}_{mean,std}``, step = that layer's forward count.
    ``chunk_size`` (zarr chunking upstream) is accepted and ignored.
    """

    def __init__(
        self, model_label: Any, model: Any = None, context: object = None, chunk_size: int = 64
    ) -> None:
        super().__init__()
        if model is None and isinstance(model_label, nn.Module):
            model_label, model = type(model_label).__name__, model_label
        if not isinstance(model, nn.Module):
            raise ConfigTypeError(
                "ProvenanceTrackedModel takes (model) or (model_label, model, ...) with a torch.nn.Module, "
                f"got {type(model).__name__}"
            )
        self.model = model
        self.model_name = str(model_label)
        self.context = context
        self.chunk_size = chunk_size
        self._calls: dict[str, int] = {}
        self.handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in model.named_modules()
            if isinstance(module, _ACTIVATION_LAYERS)
        ]

    def _hook(self, layer: str) -> Any:
        prefix = f"{self.model_name}/{layer}"

        def hook(_module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            step = self._calls.get(layer, 0)
            self._calls[layer] = step + 1
            with torch.no_grad():
                for kind, tensor in (("input", inputs[0] if inputs else None), ("output", output)):
                    if isinstance(tensor, torch.Tensor) and tensor.numel() > 0:
                        data = tensor.detach().float()
                        _api.log_metric(f"{prefix}/{kind}_mean", float(data.mean()), self.context, step)
                        std = float(data.std()) if data.numel() > 1 else 0.0
                        _api.log_metric(f"{prefix}/{kind}_std", std, self.context, step)

        return hook

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def close(self) -> None:
        """Stop recording (upstream wrote its zarr store here)."""
        for handle in self.handles:
            handle.remove()
        self.handles = []


class WeightDistributionTrackedModel(nn.Module):
    """Wrap ``model``; :meth:`log_epoch` logs each weight layer's weight statistics.

    Series ``<model_label>/<layer>/weight_{mean,std,min,max,p25,p50,p75}``, step = epoch.
    ``chunk_size`` (zarr chunking upstream) is accepted and ignored.
    """

    def __init__(self, model_label: str, model: Any, context: object = None, chunk_size: int = 64) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ConfigTypeError(
                "WeightDistributionTrackedModel(model_label, model) needs a torch.nn.Module, "
                f"got {type(model).__name__}"
            )
        self.model = model
        self.model_name = str(model_label)
        self.context = context
        self.chunk_size = chunk_size
        self._tracked = {
            name: module
            for name, module in model.named_modules()
            if isinstance(module, _WEIGHT_LAYERS)
            and any(p.requires_grad for p in module.parameters(recurse=False))
        }

    def log_epoch(self, epoch: int) -> None:
        """Log the weight statistics of every tracked layer now, at step ``epoch``."""
        with torch.no_grad():
            for name, module in self._tracked.items():
                weights = [
                    p.detach().float().flatten().cpu()
                    for n, p in module.named_parameters(recurse=False)
                    if "weight" in n
                ]
                if not weights:
                    continue
                flat = torch.cat(weights)
                sample = flat[:: max(1, flat.numel() // _QUANTILE_MAX)]
                q = torch.quantile(sample, torch.tensor([0.25, 0.5, 0.75]))
                stats = {
                    "mean": float(flat.mean()),
                    "std": float(flat.std()) if flat.numel() > 1 else 0.0,
                    "min": float(flat.min()),
                    "max": float(flat.max()),
                    "p25": float(q[0]),
                    "p50": float(q[1]),
                    "p75": float(q[2]),
                }
                for stat, value in stats.items():
                    _api.log_metric(
                        f"{self.model_name}/{name}/weight_{stat}", value, self.context, int(epoch)
                    )

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)

    def close(self) -> None:
        """Nothing to flush: the statistics are already in the rank's series."""
