"""In the style of the current upstream examples (prov4ml_torch.py, prov4ml_wrappers.py) and of
prov4ml's older ones: Contexts mixed with upstream's strings, register_final_metric with
FoldOperation, the model/dataset passed first, log_input/log_output.  Tiny synthetic data.

Only the import line differs from upstream.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import yprov4ml_hpc as yprov4ml

torch.manual_seed(0)
yprov4ml.start_run(
    prov_user_namespace="www.example.org",
    experiment_name="example",
    provenance_save_dir="prov",
    save_after_n_logs=100,
    collect_all_processes=True,
    metrics_file_type="nc",  # upstream: netCDF; here a warning, series stay in HDF5
    use_compressor=True,
)
yprov4ml.register_final_metric("MSE_train", 10, yprov4ml.FoldOperation.MIN)
yprov4ml.register_final_metric("MSE_train_sum", 0.0, yprov4ml.FoldOperation.ADD)
yprov4ml.log_execution_command(cmd="python", path="current_examples.py")


class MNISTModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(28 * 28, 10), nn.ReLU())

    def forward(self, x):
        return self.model(x.view(x.size(0), -1))


mnist_model = yprov4ml.ProvenanceTrackedModel(MNISTModel())
data = TensorDataset(torch.rand(32, 1, 28, 28), torch.randint(0, 10, (32,)))
train_loader = DataLoader(data, batch_size=8, shuffle=True)
yprov4ml.log_dataset(train_loader, "train_dataset")  # prov4ml 1.x: dataset first
yprov4ml.log_param("dataset transformation", "ToTensor")
optim = torch.optim.Adam(mnist_model.parameters(), lr=0.001)
loss_fn = yprov4ml.ProvenanceTrackedFunction(nn.MSELoss(), context="Training")
yprov4ml.log_context("TrainingButDifferent", "Training")

for epoch in range(2):
    for x, y in train_loader:
        optim.zero_grad()
        loss = loss_fn(mnist_model(x), F.one_hot(y, 10).float())
        loss.backward()
        optim.step()
        # enum members and upstream's own strings: one context
        yprov4ml.log_metric("MSE_train", loss.item(), context=yprov4ml.Contexts.TRAINING, step=epoch)
        yprov4ml.log_metric("MSE_train", loss.item(), "Training", step=epoch)
        yprov4ml.log_metric("MSE_train_sum", loss.item(), "TRAINING", step=epoch)
    yprov4ml.save_model_version(
        mnist_model, "mnist_model_version", yprov4ml.Contexts.MODELS, epoch
    )  # 1.x order

with open("predictions.txt", "w") as handle:
    handle.write("0 1 2\n")
yprov4ml.log_input("labels_seen", [int(v) for v in data.tensors[1][:4]], "Training")
yprov4ml.log_output("predictions", "predictions.txt", "Training")
yprov4ml.log_model(mnist_model, "mnist_model_final")  # prov4ml 1.x: model first
yprov4ml.end_run(create_graph=True, create_svg=True, crate_ro_crate=True)
