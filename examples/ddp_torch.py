"""PyTorch DistributedDataParallel on CPU (gloo), with provenance of every rank.

    torchrun --nproc_per_node 2 examples/ddp_torch.py
    mpiexec -n 2 python examples/ddp_torch.py          # MPI launcher: ranks from MPI's environment
    python examples/ddp_torch.py                        # one process, no process group

Needs torch (``pip install torch``; the package itself does not).  Every rank logs its own
loss and throughput; rank 0 logs the model; ``end_run`` on every rank writes one document.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import yprov4ml_hpc as prov4ml

try:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
except ImportError:
    sys.exit("this example needs PyTorch: pip install torch (a CPU build is enough)")


def _init_process_group() -> tuple[int, int]:
    """torchrun sets RANK/WORLD_SIZE; under mpiexec take them from MPI's environment."""
    for rank_var, size_var in (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE")):
        if "RANK" not in os.environ and rank_var in os.environ:
            os.environ["RANK"], os.environ["WORLD_SIZE"] = os.environ[rank_var], os.environ[size_var]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--save-dir", default="prov")
    args = parser.parse_args()

    rank, world = _init_process_group()
    torch.manual_seed(1234 + rank)
    run = prov4ml.start_run("ddp_torch", provenance_save_dir=args.save_dir)
    prov4ml.log_params(
        {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "world_size": world,
            "backend": "gloo" if world > 1 else "none",
        }
    )

    # Each rank's shard of a synthetic regression problem.
    x = torch.randn(4096, 32)
    y = x @ torch.linspace(-1, 1, 32).unsqueeze(1) + 0.1 * torch.randn(4096, 1)
    model: torch.nn.Module = torch.nn.Sequential(
        torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
    )
    if world > 1:
        model = DistributedDataParallel(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.MSELoss()
    prov4ml.log_dataset("train_shard", torch.utils.data.TensorDataset(x, y))

    step = 0
    for epoch in range(args.epochs):
        started = time.perf_counter()
        for batch in range(0, len(x), args.batch_size):
            optimizer.zero_grad()
            loss = loss_fn(model(x[batch : batch + args.batch_size]), y[batch : batch + args.batch_size])
            loss.backward()  # DDP all-reduces the gradients here
            optimizer.step()
            prov4ml.log_metric("loss", loss.item(), context=prov4ml.Context.TRAINING, step=step)
            step += 1
        seconds = time.perf_counter() - started
        prov4ml.log_metric("samples_per_s", len(x) / seconds, context="throughput", step=epoch)
        with torch.no_grad():
            val = loss_fn(model(x[:512]), y[:512]).item()
        prov4ml.log_metric("val_loss", val, context=prov4ml.Context.VALIDATION, step=epoch)

    if rank == 0:
        module = model.module if isinstance(model, DistributedDataParallel) else model
        prov4ml.log_model("mlp", module)  # saved as a state_dict under artifacts/
    run_dir = prov4ml.end_run()
    if world > 1:
        dist.destroy_process_group()
    if rank == 0:
        print(f"{world} rank(s) recorded in {run.run_dir}; try: yprov4ml-hpc report {run_dir}")


if __name__ == "__main__":
    main()
