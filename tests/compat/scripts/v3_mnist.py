"""A training script in the style of yProv4ML 3.2.x's examples and docs (tiny synthetic data).

Only the import lines differ from upstream (`import yprov4ml` -> `import yprov4ml_hpc as yprov4ml`,
`from yprov4ml.utils import getters` -> `from yprov4ml_hpc.utils import getters`).
"""

import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import yprov4ml_hpc as yprov4ml
from yprov4ml_hpc.utils import getters

EPOCHS = 2
torch.manual_seed(0)
use_run_id = int(sys.argv[1]) if len(sys.argv) > 1 else None

# 3.2.x positional order, all ten parameters
yprov4ml.start_run("mnist_v3", "www.example.org", "prov", True, 100, None, "csv", ",", False, use_run_id)
yprov4ml.log_source_code(True)
yprov4ml.log_context("TrainingButDifferent", "Training")
yprov4ml.log_context("Validation", None, "synthetic")

model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.ReLU(), nn.Linear(32, 10))
model = yprov4ml.WeightDistributionTrackedModel("mnist_model", model, "Training", 64)
traced = yprov4ml.ProvenanceTrackedModel("activations", model, "Training", 64)
yprov4ml.log_model("mnist_model", model, context="Training")
yprov4ml.log_param(
    "dataset transformation", {"normalize": True, "mean": [0.5]}, "Training", "torchvision", True
)

data = TensorDataset(torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,)))
train_loader = DataLoader(data, batch_size=16, shuffle=True)
yprov4ml.log_dataset("train_dataset", train_loader, "Training", "synthetic", True, {"origin": "torch.rand"})
optim = torch.optim.Adam(model.parameters(), lr=0.001)
loss_fn = yprov4ml.ProvenanceTrackedFunction(nn.CrossEntropyLoss(), context="Training")
val_loss_fn = yprov4ml.ProvenanceTrackedFunction(nn.CrossEntropyLoss(), "Validation")

for epoch in range(EPOCHS):
    for x, y in train_loader:
        optim.zero_grad()
        loss = loss_fn(traced(x), y)
        loss.backward()
        optim.step()
        yprov4ml.log_metric("MSE", loss.item(), "Training", epoch, "torch", None)
    model.log_epoch(epoch)
    with torch.no_grad():
        for x, y in train_loader:
            yprov4ml.log_metric("MSE", val_loss_fn(model(x), y).item(), context="Validation", step=epoch)
    yprov4ml.log_system_metrics("Training", epoch)
    yprov4ml.log_flops_per_batch("flops", model, (x, y), "Training", epoch)
    # 3.2.x order: model_name, model, context, source, step, incremental, is_input, copy, other_attrs
    yprov4ml.save_model_version(
        "mnist_model_version", model, "Training", "torch", epoch, True, False, True, {"e": epoch}
    )
    yprov4ml.log_current_execution_time("train_epoch_time", "Training", epoch)

torch.save(model.state_dict(), "weights.pt")
# 3.2.x order: name, path, context, source, step, copy, copy_subdirectory, is_model, is_input, other_attrs
yprov4ml.log_artifact(
    "weights", "weights.pt", "Training", "torch", EPOCHS, True, "final", True, False, {"k": 1}
)
yprov4ml.log_model("mnist_model_final", model, "Training", "torch", True, True, True, False, {"final": True})
print("artifacts dir:", yprov4ml.get_artifacts_dir())
print("run dir:", yprov4ml.get_run_dir())
run_dir = yprov4ml.get_run_dir()
traced.close()
model.close()
yprov4ml.end_run(True, True, True, True)

# reading it back, in the style of upstream's reading_example.py
if yprov4ml.active_run() is None and (run_dir / "summary.json").exists():
    path = sorted(run_dir.glob("prov_*.json"))[0]
    print("activities:", len(getters.list_activities(str(path))))
    print("models:", getters.list_entities(str(path), "provml:Model"))
    print(getters.list_metrics(str(path), context="Training")[["label", "context", "source", "csv_path"]])
    print(getters.get_metric(str(path), name="MSE", context="Training"))
