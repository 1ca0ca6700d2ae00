"""ProvMLItwinAILogger driven the way itwinai's trainers drive a logger (start_logging, log kinds).

Only the import differs from yProv4ML.  Runs single-process and under mpiexec: every rank
starts and ends the run; only the ranks in log_on_workers log (upstream's rule).
"""

import os

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import yprov4ml_hpc as yprov4ml

rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
logger = yprov4ml.ProvMLItwinAILogger(
    experiment_name="itwinai_exp", provenance_save_dir="prov", log_freq="batch", log_on_workers=-1
)
model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
data = TensorDataset(torch.rand(8, 16), torch.randint(0, 2, (8,)))
loader = DataLoader(data, batch_size=4)
with logger.start_logging(rank=rank):
    logger.save_hyperparameters({"lr": 0.01, "batch_size": 4})
    logger.log(loader, "train_loader", kind="torch")
    for epoch in range(2):
        for batch_idx, (x, y) in enumerate(loader):
            loss = nn.functional.cross_entropy(model(x), y)
            logger.log(loss.item(), "loss", kind="metric", step=epoch * 2 + batch_idx, batch_idx=batch_idx)
        logger.log((model, (x, y)), "flops_pb", kind="flops_pb", step=epoch)
        logger.log((model, data), "flops_pe", kind="flops_pe", step=epoch)
        logger.log(None, "system", kind="system", step=epoch)
        logger.log(None, "epoch_time", kind="execution_time", step=epoch)
        logger.log(model, "model", kind="model", step=epoch)
    logger.log(model, "best_model", kind="best_model")
