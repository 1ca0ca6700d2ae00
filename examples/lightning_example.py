"""PyTorch Lightning with yprov4ml_hpc's logger: every rank's metrics in one document.

    python examples/lightning_example.py                    # one CPU process
    python examples/lightning_example.py --devices 2        # DDP over 2 CPU processes (gloo)
    srun python examples/lightning_example.py --devices 4 --num-nodes 2 --accelerator gpu

Needs torch and lightning (``pip install lightning``).  ``Yprov4mlLogger`` records on every
rank, not only rank 0, and merges the ranks' files when ``fit`` ends.
"""

from __future__ import annotations

import argparse
import sys

try:
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset
except ImportError:
    sys.exit("this example needs PyTorch Lightning: pip install lightning")

from yprov4ml_hpc.integrations.lightning import Yprov4mlLogger


class Regressor(L.LightningModule):
    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()  # -> Yprov4mlLogger.log_hyperparams on every rank
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)  # this rank's value: no sync_dist, so ranks can be compared
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])


def _loader(n: int, seed: int, shuffle: bool) -> DataLoader[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    y = x @ torch.linspace(-1, 1, 16).unsqueeze(1) + 0.1 * torch.randn(n, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=shuffle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--num-nodes", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--save-dir", default="prov")
    args = parser.parse_args()

    L.seed_everything(1234, verbose=False)
    logger = Yprov4mlLogger("lightning_demo", provenance_save_dir=args.save_dir)
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy="ddp" if args.devices * args.num_nodes > 1 else "auto",
        max_epochs=args.epochs,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Regressor(), _loader(1024, 0, True), _loader(256, 1, False))
    if trainer.is_global_zero:
        run_dir = logger.experiment.run_dir
        print(f"{trainer.world_size} rank(s) recorded in {run_dir}; try: yprov4ml-hpc summary {run_dir}")


if __name__ == "__main__":
    main()
