"""yProv4ML's examples/prov4ml_MLlogger.py, shrunk to synthetic data and CPU.  Only the imports differ."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch.utils.data import DataLoader, TensorDataset

import yprov4ml_hpc as yprov4ml
from yprov4ml_hpc import ProvMLLogger

yprov4ml.start_run(
    prov_user_namespace="www.example.org",
    experiment_name="experiment_name",
    provenance_save_dir="prov",
    save_after_n_logs=100,
)


class MNISTModel(LightningModule):
    def __init__(self):
        super().__init__()
        self.model = torch.nn.Sequential(torch.nn.Linear(28 * 28, 10))

    def forward(self, x):
        return self.model(x.view(x.size(0), -1))

    def training_step(self, batch, _):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("MSE_training", loss, yprov4ml.Contexts.TRAINING)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("MSE_validation", loss, yprov4ml.Contexts.VALIDATION)
        return loss

    def on_train_epoch_end(self) -> None:
        yprov4ml.log_metric("epoch", self.current_epoch, yprov4ml.Contexts.TRAINING, step=self.current_epoch)
        yprov4ml.save_model_version(
            f"model_version_{self.current_epoch}", self, yprov4ml.Contexts.TRAINING, step=self.current_epoch
        )
        yprov4ml.log_current_execution_time(
            "train_epoch_time", yprov4ml.Contexts.TRAINING, self.current_epoch
        )

    def configure_optimizers(self):
        optim = torch.optim.Adam(self.parameters(), lr=0.0002)
        yprov4ml.log_param("optimizer", optim)
        return optim


torch.manual_seed(0)
data = TensorDataset(torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,)))
train_loader = DataLoader(data, batch_size=16)
val_loader = DataLoader(data, batch_size=32)
yprov4ml.log_dataset("train_dataset", train_loader)
yprov4ml.log_dataset("val_dataset", val_loader)
trainer = L.Trainer(
    accelerator="cpu",
    devices=1,
    max_epochs=2,
    logger=[ProvMLLogger()],
    enable_checkpointing=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    log_every_n_steps=1,
)
trainer.fit(MNISTModel(), train_loader, val_dataloaders=val_loader)
yprov4ml.log_model("model_version_final", trainer.lightning_module)
yprov4ml.end_run(create_graph=True, create_svg=True, crate_ro_crate=True)
