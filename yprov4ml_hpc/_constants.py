"""One source of truth for schema names, environment variables and defaults."""

from __future__ import annotations

import os

# --- on-disk schema -------------------------------------------------------------------------
RANK_SCHEMA = "yprov4ml_hpc/rank"
RANK_SCHEMA_VERSION = 1
SUMMARY_SCHEMA = "yprov4ml_hpc/summary"
SUMMARY_SCHEMA_VERSION = 1

RANKS_DIRNAME = "ranks"
ARTIFACTS_DIRNAME = "artifacts"
SUMMARY_FILENAME = "summary.json"
RANK_FILE_TEMPLATE = "rank_{rank:06d}.h5"
RANK_FILE_SUFFIX = ".h5"
# While a rank runs it appends to its journal; at close the journal is folded into the .h5
# (see _journal.py and _fold.py).  When both exist the .h5 wins: it was complete before the rename.
JOURNAL_FILE_TEMPLATE = "rank_{rank:06d}.journal"
JOURNAL_SUFFIX = ".journal"

# Groups and datasets inside a rank file.
METRICS_GROUP = "metrics"
PARAMS_DATASET = "params"  # JSON lines, one record per log_param call (last one wins)
ARTIFACTS_DATASET = "artifacts"  # JSON lines, one record per artifact/model/dataset
EVENTS_DATASET = "events"  # JSON lines: start, end, signal, epoch, ...
# One JSON text with everything a merge reads of the rank (root attributes, series with their
# statistics, records): read instead of the layout when present and valid (_meta_record.py).
META_DATASET = "meta"

# Rank statuses written by the collector; a merge adds "incomplete" and "missing".
STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUS_FAILED = "failed"
STATUS_KILLED = "killed"
STATUS_INCOMPLETE = "incomplete"
STATUS_MISSING = "missing"
STATUS_DAMAGED = (
    "damaged"  # shown by ls/info for a rank whose file is unreadable (summary: missing + problem)
)
# Display order, best first (ls, report, compare), and the job status: the first of
# JOB_STATUS_PRECEDENCE that any rank has, else finished.
STATUS_ORDER = (
    STATUS_FINISHED,
    STATUS_RUNNING,
    STATUS_INCOMPLETE,
    STATUS_KILLED,
    STATUS_FAILED,
    STATUS_MISSING,
    STATUS_DAMAGED,
)
JOB_STATUS_PRECEDENCE = (STATUS_FAILED, STATUS_KILLED, STATUS_INCOMPLETE, STATUS_MISSING)
# Colour of each status in the report's pictures (running and incomplete alike: not ended).
STATUS_COLORS = {
    STATUS_FINISHED: "#4caf50",
    STATUS_FAILED: "#e53935",
    STATUS_KILLED: "#fb8c00",
    STATUS_INCOMPLETE: "#8e24aa",
    STATUS_RUNNING: "#8e24aa",
    STATUS_MISSING: "#bdbdbd",
    STATUS_DAMAGED: "#bdbdbd",
}

# --- defaults -------------------------------------------------------------------------------
DEFAULT_SAVE_DIR = "prov"
DEFAULT_BUFFER_SIZE = 4096
DEFAULT_FLUSH_INTERVAL_S = 10.0
# Who writes a rank's journal: "thread" (a thread of the rank) or "process" (a process of its
# own reading the rings from shared memory: no GIL turns in the training process).
# The process needs Linux's memfd_create (shared memory passed by file descriptor).
JOURNAL_WRITER_CHOICES = ("thread", "process")
DEFAULT_JOURNAL_WRITER = "process" if hasattr(os, "memfd_create") else "thread"
ENV_JOURNAL_WRITER = "YPROV4ML_HPC_WRITER"
DEFAULT_CONTEXT = "default"  # stored when log_metric(context=None)
DEFAULT_FINALIZE_TIMEOUT_S = 120.0
# After its SIGTERM flush a rank of an MPI job waits in MPI_Finalize for its siblings' flushes
# (mpiexec kills every rank as soon as one exits unfinalized); at most this long.
SIGTERM_SIBLINGS_WAIT_S = 5.0
DEFAULT_SYSTEM_METRICS_INTERVAL_S = 10.0
DEFAULT_PROV_DETAIL = "auto"
PROV_DETAIL_AUTO_MAX_RANKS = 16
DEFAULT_STRAGGLER_FACTOR = 1.5

# --- environment variables ------------------------------------------------------------------
ENV_NVML_REPLAY = "YPROV4ML_HPC_NVML_REPLAY"
ENV_SAVE_DIR = "YPROV4ML_HPC_SAVE_DIR"
ENV_CARBON = "YPROV4ML_HPC_CARBON"  # "0" turns codecarbon off for every run (e.g. site-wide)
ENV_SYSTEM_METRICS_INTERVAL = "YPROV4ML_HPC_SYSTEM_METRICS_INTERVAL_S"
ENV_LIGHTNING_RUN_ID = "YPROV4ML_HPC_LIGHTNING_RUN_ID"  # the logger's run id, shared with DDP children
# Variables of other software that we read or set.
ENV_CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
ENV_CODECARBON_LOG_LEVEL = "CODECARBON_LOG_LEVEL"

# Launcher variables, in the order they are tried (DESIGN section 3).
MPI_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "MPI_RANK")
MPI_SIZE_VARS = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_SIZE")
MPI_LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK")
MPI_LOCAL_SIZE_VARS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMI_LOCAL_SIZE")
SLURM_RANK_VAR = "SLURM_PROCID"
SLURM_SIZE_VAR = "SLURM_NTASKS"
SLURM_LOCAL_RANK_VAR = "SLURM_LOCALID"
SLURM_JOB_VAR = "SLURM_JOB_ID"
SLURM_STEP_VAR = "SLURM_STEP_ID"
TORCH_RANK_VAR = "RANK"
TORCH_SIZE_VAR = "WORLD_SIZE"
TORCH_LOCAL_RANK_VAR = "LOCAL_RANK"
TORCH_LOCAL_SIZE_VAR = "LOCAL_WORLD_SIZE"
TORCH_RUN_ID_VAR = "TORCHELASTIC_RUN_ID"

# --- merge and finalize (one PROV document + summary per job) ---------------------------------
PROV_DETAIL_CHOICES = ("auto", "rank", "job")
# Our vocabulary (yprov4ml:Job, yprov4ml:rank, ...): one URI of our choosing, declared once.
PROV_NAMESPACE_PREFIX = "yprov4ml"
PROV_NAMESPACE_URI = "https://w3id.org/yprov4ml-hpc/ns#"
XSD_NAMESPACE_URI = "http://www.w3.org/2001/XMLSchema#"
# Identifiers of one run's records live in a namespace of their own (short ids, no clashes
# when several runs are merged into one document).
PROV_RUN_NAMESPACE_TEMPLATE = "urn:yprov4ml-hpc:run:{experiment}_{run_id}:"
PROV_DOCUMENT_TEMPLATE = "prov_{experiment}_{run_id}.json"
GRAPH_DOT_FILENAME = "graph.dot"
GRAPH_SVG_FILENAME = "graph.svg"
GRAPH_SVG_MAX_NODES = 5000  # beyond this `dot` runs for ages; graph.dot is still written
CONSOLIDATED_FILENAME = "consolidated.h5"
# Contexts written by the background samplers: not training steps (steps/stragglers ignore them).
ENERGY_CONTEXT = "energy"
GPU_CONTEXT = "gpu"
SYSTEM_CONTEXT = "system"
SAMPLER_CONTEXTS = (ENERGY_CONTEXT, GPU_CONTEXT, SYSTEM_CONTEXT)
# A rank is named a straggler for its wall time only if it is also this much longer than the
# median: start-up jitter of a short job is not a straggler.
STRAGGLER_MIN_WALL_EXCESS_S = 1.0
# Once rank 0 has answered, the others wait this long (beyond finalize_timeout_s) for the
# document to be built; building takes seconds even at 10^5 ranks, so this only bounds a crash.
FINALIZE_BUILD_ALLOWANCE_S = 600.0
