"""A training script in the style of yProv4ML 2.0.x's examples (tiny synthetic MNIST, no network).

Only the import line differs from upstream: `import yprov4ml` -> `import yprov4ml_hpc as yprov4ml`.
Calls are positional where 2.0.x's examples and docs pass them so.
"""

import os
import sys

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

import yprov4ml_hpc as yprov4ml

EPOCHS = 2
torch.manual_seed(0)

# 2.0.x order: ..., rank, disable_codecarbon, metrics_file_type, csv_separator, use_compressor
yprov4ml.start_run(
    "mnist_v2",
    "www.example.org",
    "prov",
    False,
    100,
    None,
    True,
    yprov4ml.MetricsType.CSV,
    ",",
    yprov4ml.CompressorType.NONE,
)
yprov4ml.log_source_code(os.path.dirname(os.path.abspath(__file__)))
yprov4ml.log_execution_command("python", "v2_mnist.py")
yprov4ml.create_context("TRAINING_LOD2", yprov4ml.Context.TRAINING)


class MNISTModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(28 * 28, 10))

    def forward(self, x):
        return self.model(x.view(x.size(0), -1))


images, labels = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))
train_ds = Subset(TensorDataset(images, labels), range(48))
train_loader = DataLoader(train_ds, batch_size=16, shuffle=True)
test_loader = DataLoader(Subset(TensorDataset(images, labels), range(48, 64)), batch_size=16)
yprov4ml.log_dataset("train_dataset", train_loader, yprov4ml.Context.DATASETS, True)
yprov4ml.log_dataset("val_dataset", test_loader)

model = MNISTModel()
optim = torch.optim.Adam(model.parameters(), lr=0.001)
yprov4ml.log_param("optimizer", "Adam")
yprov4ml.log_param("lr", 0.001, yprov4ml.Context.TRAINING)
yprov4ml.log_execution_start_time()

for epoch in range(EPOCHS):
    model.train()
    for x, y in train_loader:
        optim.zero_grad()
        loss = F.mse_loss(model(x), F.one_hot(y, 10).float())
        loss.backward()
        optim.step()
        yprov4ml.log_metric(
            "MSE_train", loss.item(), yprov4ml.Context.TRAINING, epoch, yprov4ml.LoggingItemKind.METRIC
        )
    yprov4ml.log_flops_per_batch("flops_pb", model, (x, y), yprov4ml.Context.TRAINING, epoch)
    yprov4ml.log_flops_per_epoch("flops_pe", model, train_ds, yprov4ml.Context.TRAINING, epoch)
    yprov4ml.log_system_metrics(yprov4ml.Context.TRAINING, epoch)
    yprov4ml.log_carbon_metrics(yprov4ml.Context.TRAINING, epoch)
    yprov4ml.log_current_execution_time("train_epoch_time", yprov4ml.Context.TRAINING, epoch)
    # 2.0.x order: model_name, model, context, step, incremental, is_input
    yprov4ml.save_model_version("mnist_model_version", model, yprov4ml.Context.MODELS, epoch, True, False)
    model.eval()
    with torch.no_grad():
        for x, y in test_loader:
            loss = F.mse_loss(model(x), F.one_hot(y, 10).float())
            yprov4ml.log_metric("MSE_val", loss.item(), yprov4ml.Context.VALIDATION, epoch)

torch.save(model.state_dict(), "final_weights.pt")
# 2.0.x order: artifact_name, artifact_path, context, step, log_copy_in_prov_directory, is_model, is_input
yprov4ml.log_artifact("final_weights", "final_weights.pt", yprov4ml.Context.MODELS, EPOCHS, True, True, False)
# 2.0.x order: model_name, model, context, log_model_info, log_model_layers, is_input
yprov4ml.log_model("mnist_model_final", model, yprov4ml.Context.MODELS, True, True, False)
yprov4ml.log_execution_end_time()
if "--log-provenance-documents" in sys.argv:
    yprov4ml.log_provenance_documents(True, True, False)
else:
    yprov4ml.end_run(True, True, False)
