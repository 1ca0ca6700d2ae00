"""Counting FLOPs with torch's own counter (``torch.utils.flop_counter``), no fvcore needed."""

from __future__ import annotations

from typing import Any

from .._errors import MissingDependencyError

__all__ = ["count_forward_flops", "first_sample"]


def count_forward_flops(model: Any, inputs: Any) -> float:
    """FLOPs of ``model(inputs)`` (one forward pass, no gradient), as torch counts them."""
    try:
        import torch
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError as exc:
        raise MissingDependencyError(
            "log_flops_per_batch/log_flops_per_epoch need PyTorch (>= 2.1); install torch"
        ) from exc
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(inputs)
    return float(counter.get_total_flops())


def first_sample(dataset: Any) -> tuple[Any, int]:
    """(the first sample as a batch of one, number of samples) of a dataset or DataLoader."""
    inner = getattr(dataset, "dataset", None)
    source = inner if inner is not None and hasattr(dataset, "batch_size") else dataset
    sample = source[0]
    import torch

    def batched(item: Any) -> Any:
        return item.unsqueeze(0) if isinstance(item, torch.Tensor) else item

    if isinstance(sample, (tuple, list)):
        return type(sample)(batched(item) for item in sample), len(source)
    return batched(sample), len(source)
