"""Quickstart: a small NumPy model trained data-parallel over MPI, with provenance.

    mpiexec -n 4 python examples/quickstart_mpi.py

Each rank fits a linear model on its own shard of a synthetic regression problem; gradients
are averaged with ``allreduce``.  Every rank logs its loss, the job's params are logged once,
and the script prints where the provenance went.  Runs in a few seconds on a laptop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

import yprov4ml_hpc as prov4ml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--save-dir", default="prov")
    args = parser.parse_args()

    comm = MPI.COMM_WORLD
    prov4ml.start_run("quickstart", provenance_save_dir=args.save_dir)
    prov4ml.log_params(
        {
            "epochs": args.epochs,
            "lr": args.lr,
            "world_size": comm.size,
            "optimizer": "sgd",
            "model": "linear-16",
        }
    )

    rng = np.random.default_rng(1234 + comm.rank)
    true_w = np.linspace(-1.0, 1.0, 16)
    x = rng.normal(size=(4096, 16))
    y = x @ true_w + 0.1 * rng.normal(size=4096)
    prov4ml.log_dataset("train_shard", x)
    w = np.zeros(16)
    grad = np.empty(16)
    for epoch in range(args.epochs):
        started = time.perf_counter()
        for step in range(args.steps_per_epoch):
            idx = rng.integers(0, len(x), size=256)
            err = x[idx] @ w - y[idx]
            local_grad = x[idx].T @ err / len(idx)
            comm.Allreduce(local_grad, grad, op=MPI.SUM)
            w -= args.lr * grad / comm.size
            global_step = epoch * args.steps_per_epoch + step
            prov4ml.log_metric(
                "loss", float(np.mean(err**2)), context=prov4ml.Context.TRAINING, step=global_step
            )
        val_err = x[:512] @ w - y[:512]
        prov4ml.log_metric(
            "val_loss", float(np.mean(val_err**2)), context=prov4ml.Context.VALIDATION, step=epoch
        )
        prov4ml.log_metric("epoch_time_s", time.perf_counter() - started, context="timing", step=epoch)

    if comm.rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            weights = Path(tmp) / "linear.npy"
            np.save(weights, w)
            prov4ml.log_model("linear.npy", weights)  # copied into the run directory
    run_dir = prov4ml.end_run(create_graph=True)
    if comm.rank == 0:
        print(f"provenance of {comm.size} ranks written to {run_dir}")
        for path in sorted(run_dir.rglob("*")):
            if path.is_file():
                print(f"  {path.relative_to(run_dir)}  ({path.stat().st_size} bytes)")
        print(f"inspect it with: yprov4ml-hpc summary {run_dir}")
        print(f"             or: yprov4ml-hpc report {run_dir}   (one HTML file with the figures)")


if __name__ == "__main__":
    main()
