"""A yProv4ML script, unchanged but for its import line: the drop-in use of yprov4ml_hpc.

    python examples/yprov4ml_style.py
    mpiexec -n 4 python examples/yprov4ml_style.py      # every rank records, one document

The body is written as yProv4ML's documentation shows it (2.x names: ``Context``,
``log_carbon_metrics``, ``save_after_n_logs``, ``end_run(create_graph=..., create_svg=...)``).
Arguments that have no meaning here are accepted and ignored, so the script runs as is.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import yprov4ml_hpc as prov4ml  # was: import prov4ml


def train(epochs: int, lr: float, rng: np.random.Generator) -> np.ndarray:
    """A tiny logistic regression with plain NumPy, logged the yProv4ML way."""
    x = rng.normal(size=(2048, 8))
    y = (x @ np.linspace(-1, 1, 8) + 0.3 * rng.normal(size=2048) > 0).astype(float)
    x_val, y_val = x[:256], y[:256]
    w = np.zeros(8)
    for epoch in range(epochs):
        for batch in range(0, len(x), 128):
            xb, yb = x[batch : batch + 128], y[batch : batch + 128]
            p = 1 / (1 + np.exp(-(xb @ w)))
            w -= lr * xb.T @ (p - yb) / len(xb)
        p = np.clip(1 / (1 + np.exp(-(x @ w))), 1e-9, 1 - 1e-9)
        loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        prov4ml.log_metric("Loss_train", loss, context=prov4ml.Context.TRAINING, step=epoch)
        acc = float(np.mean(((x_val @ w) > 0) == y_val))
        prov4ml.log_metric("Accuracy_val", acc, context=prov4ml.Context.VALIDATION, step=epoch)
        prov4ml.log_current_execution_time("epoch_end", prov4ml.Context.TRAINING, step=epoch)
        prov4ml.log_system_metrics(prov4ml.Context.TRAINING, step=epoch)
        prov4ml.log_carbon_metrics(prov4ml.Context.TRAINING, step=epoch)
    return w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--save-dir", default="prov")
    args = parser.parse_args()

    prov4ml.start_run(
        prov_user_namespace="www.example.org",
        experiment_name="yprov4ml_style",
        provenance_save_dir=args.save_dir,
        save_after_n_logs=100,  # yProv4ML's buffering knob: accepted, ignored (rings flush here)
        collect_all_processes=True,  # every rank is always collected here
    )
    prov4ml.log_param("lr", args.lr)
    prov4ml.log_param("epochs", args.epochs)
    prov4ml.log_execution_start_time()
    prov4ml.log_source_code(__file__)

    rng = np.random.default_rng(0)
    w = train(args.epochs, args.lr, rng)

    prov4ml.log_execution_end_time()
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.json"
        weights.write_text(json.dumps(w.tolist()))
        prov4ml.log_model("logreg", weights)  # a path: copied into the run directory
    run_dir = prov4ml.end_run(create_graph=True, create_svg=True)
    print(f"provenance in {run_dir}; look at it with: yprov4ml-hpc summary {run_dir}")


if __name__ == "__main__":
    main()
