"""Logging overhead of a realistic training loop, yprov4ml_hpc against its peers (issue 6).

A NumPy MLP step (forward, backward, SGD update: a few ms on one core) logs 10 metrics per
step.  Each tool runs the same loop; runs alternate between tools (the order rotates every
repetition) so that a noisy machine hurts every tool alike.  Per tool it reports:

* slowdown %: median loop time over repetitions against the no-logging loop's median, and
  the paired ratio (each run against the baseline run of the same repetition);
* interleaved slowdown %: within each run, blocks of 10 steps with and without logging
  alternate; ratio of their median step times (robust on a shared machine);
* direct share: time inside the logging calls / compute time;
* the latency of logging one step (10 metrics, each tool's usual way) and of one
  single-metric call (p50/p99/p99.9/max), timed in the same run;
* storage: bytes per logged point and files per rank; start/end and import times.

Tools are used when importable: ``yprov4ml_hpc`` (at its defaults; ``_batch`` logs through
``log_metrics``; ``_nosamplers`` turns the background samplers and codecarbon off),
``mlflow`` (local file store), ``wandb`` (offline) and ``yprov4ml`` (Python >= 3.12, see
benchmarks/README.md).

usage: python benchmarks/bench_overhead.py [--steps 300] [--reps 10] [--out results/overhead.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import dir_usage, distribution, machine_info, median, package_version, rotate, write_json

METRICS_PER_STEP = 10


# --- the training step --------------------------------------------------------------------------
class TinyMLP:
    """A two-layer MLP trained with plain NumPy: the compute every tool's loop shares."""

    def __init__(self, batch: int = 64, features: int = 256, hidden: int = 512, classes: int = 10) -> None:
        import numpy as np

        self.np = np
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((batch, features))
        self.y = rng.integers(0, classes, batch)
        self.rows = np.arange(batch)
        self.w1 = rng.standard_normal((features, hidden)) * 0.05
        self.w2 = rng.standard_normal((hidden, classes)) * 0.05
        self.lr = 0.01
        self.small = rng.standard_normal((32, 32))

    def step(self) -> dict[str, float]:
        """One SGD step; returns the 10 metrics a training script would log."""
        np = self.np
        hidden = self.x @ self.w1
        act = np.maximum(hidden, 0.0)
        logits = act @ self.w2
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        loss = -np.log(prob[self.rows, self.y]).mean()
        grad = prob.copy()
        grad[self.rows, self.y] -= 1.0
        grad /= len(self.rows)
        g_w2 = act.T @ grad
        g_act = grad @ self.w2.T
        g_act[hidden <= 0] = 0.0
        g_w1 = self.x.T @ g_act
        self.w1 -= self.lr * g_w1
        self.w2 -= self.lr * g_w2
        return {
            "loss": float(loss),
            "accuracy": float((prob.argmax(axis=1) == self.y).mean()),
            "lr": self.lr,
            "grad_norm_w1": float(np.sqrt((g_w1 * g_w1).sum())),
            "grad_norm_w2": float(np.sqrt((g_w2 * g_w2).sum())),
            "weight_norm_w1": float(np.sqrt((self.w1 * self.w1).sum())),
            "weight_norm_w2": float(np.sqrt((self.w2 * self.w2).sum())),
            "logit_std": float(logits.std()),
            "active_fraction": float((hidden > 0).mean()),
            "prob_max_mean": float(prob.max(axis=1).mean()),
        }

    def small_work(self) -> float:
        """A few microseconds of compute between single-metric calls (keeps queues realistic)."""
        return float((self.small @ self.small)[0, 0])


# --- tool adapters ------------------------------------------------------------------------------
class Tool:
    """No logging at all: the baseline loop."""

    name = "none"
    module: str | None = None
    distribution: str | None = None
    per_step_api = "(nothing)"
    per_call_api = "(nothing)"

    def unavailable(self) -> str | None:
        if self.module is None or importlib.util.find_spec(self.module) is not None:
            return None
        return f"{self.module} is not installed in {sys.executable}"

    def load(self) -> None:
        """Import the tool (timed by the caller)."""

    def start(self, run_dir: Path, rep: int) -> None:
        """Start one run writing under ``run_dir``."""

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        """Log one step's metrics the tool's usual way."""

    def log_one(self, key: str, value: float, step: int) -> None:
        """Log one point with the tool's single-metric call."""

    def end(self) -> None:
        """End the run (flush, close)."""


class Yprov4mlHpc(Tool):
    """The collector at its defaults (background samplers and codecarbon on where installed)."""

    name = "yprov4ml_hpc"
    module = "yprov4ml_hpc"
    distribution = "yprov4ml-hpc"
    per_step_api = "10 x prov4ml.log_metric(k, v, context=Context.TRAINING, step=s)"
    per_call_api = "prov4ml.log_metric(k, v, context=Context.TRAINING, step=s)"

    def load(self) -> None:
        import yprov4ml_hpc

        self.prov = yprov4ml_hpc
        self.ctx = yprov4ml_hpc.Context.TRAINING

    def start(self, run_dir: Path, rep: int) -> None:
        self.prov.start_run("overhead", provenance_save_dir=str(run_dir))

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        log_metric, ctx = self.prov.log_metric, self.ctx
        for key, value in metrics.items():
            log_metric(key, value, context=ctx, step=step)

    def log_one(self, key: str, value: float, step: int) -> None:
        self.prov.log_metric(key, value, context=self.ctx, step=step)

    def end(self) -> None:
        self.prov.end_run()


class Yprov4mlHpcBatch(Yprov4mlHpc):
    """The same collector through its batch call, as MLflow and W&B are used here."""

    name = "yprov4ml_hpc_batch"
    per_step_api = "prov4ml.log_metrics({10 metrics}, context=Context.TRAINING, step=s)"

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self.prov.log_metrics(metrics, context=self.ctx, step=step)


class Yprov4mlHpcNoSamplers(Yprov4mlHpc):
    """The collector alone: no periodic system sampling, no codecarbon."""

    name = "yprov4ml_hpc_nosamplers"

    def start(self, run_dir: Path, rep: int) -> None:
        self.prov.start_run(
            "overhead", provenance_save_dir=str(run_dir), system_metrics_interval_s=0, disable_codecarbon=True
        )


class MLflowFileStore(Tool):
    name = "mlflow"
    module = "mlflow"
    distribution = "mlflow"
    per_step_api = "mlflow.log_metrics({10 metrics}, step=s)"
    per_call_api = "mlflow.log_metric(k, v, step=s)"

    def load(self) -> None:
        # MLflow 3 refuses the file store unless asked; it is the local store we compare with.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        import mlflow

        self.mlflow = mlflow

    def start(self, run_dir: Path, rep: int) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.mlflow.set_tracking_uri(run_dir.resolve().as_uri())
        experiment = self.mlflow.set_experiment("overhead")  # a fresh store has no experiment 0
        self.mlflow.start_run(experiment_id=experiment.experiment_id)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self.mlflow.log_metrics(metrics, step=step)

    def log_one(self, key: str, value: float, step: int) -> None:
        self.mlflow.log_metric(key, value, step=step)

    def end(self) -> None:
        self.mlflow.end_run()


class WandbOffline(Tool):
    name = "wandb"
    module = "wandb"
    distribution = "wandb"
    per_step_api = "run.log({10 metrics}, step=s)"
    per_call_api = "run.log({k: v}, step=s)"

    def load(self) -> None:
        os.environ["WANDB_MODE"] = "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb

        self.wandb = wandb

    def start(self, run_dir: Path, rep: int) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        self.run = self.wandb.init(project="overhead", dir=str(run_dir), mode="offline")

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        self.run.log(metrics, step=step)

    def log_one(self, key: str, value: float, step: int) -> None:
        self.run.log({key: value}, step=step)

    def end(self) -> None:
        self.run.finish()


class Yprov4ml(Tool):
    name = "yprov4ml"
    module = "yprov4ml"
    distribution = "yprov4ml"
    per_step_api = "10 x yprov4ml.log_metric(k, v, context=Context.TRAINING, step=s)"
    per_call_api = "yprov4ml.log_metric(k, v, context=Context.TRAINING, step=s)"

    def load(self) -> None:
        import yprov4ml

        self.prov = yprov4ml
        self.ctx = yprov4ml.Context.TRAINING

    def start(self, run_dir: Path, rep: int) -> None:
        kwargs: dict[str, Any] = {"save_after_n_logs": 100, "disable_codecarbon": True}
        try:
            self.prov.start_run(experiment_name="overhead", provenance_save_dir=str(run_dir), **kwargs)
        except TypeError:  # releases without disable_codecarbon
            kwargs.pop("disable_codecarbon")
            self.prov.start_run(experiment_name="overhead", provenance_save_dir=str(run_dir), **kwargs)

    def log_step(self, step: int, metrics: dict[str, float]) -> None:
        log_metric, ctx = self.prov.log_metric, self.ctx
        for key, value in metrics.items():
            log_metric(key, value, context=ctx, step=step)

    def log_one(self, key: str, value: float, step: int) -> None:
        self.prov.log_metric(key, value, context=self.ctx, step=step)

    def end(self) -> None:
        self.prov.end_run(create_graph=False, create_svg=False)


ALL_TOOLS: dict[str, type[Tool]] = {
    cls.name: cls
    for cls in (
        Tool, Yprov4mlHpc, Yprov4mlHpcBatch, Yprov4mlHpcNoSamplers, MLflowFileStore, WandbOffline, Yprov4ml
    )
}


# --- one run ------------------------------------------------------------------------------------
INTERLEAVE_BLOCK = 10  # steps per block in the interleaved phase


def one_run(tool: Tool, run_dir: Path, steps: int, calls: int) -> dict[str, Any]:
    """Start; ``steps`` steps logging every step; ``steps`` steps logging every other block of
    10; ``calls`` single-metric calls; end.  Each phase is timed on its own."""
    pc = time.perf_counter_ns
    model = TinyMLP()
    t0 = pc()
    tool.start(run_dir, 0)
    start_ns = pc() - t0
    step_ns, log_ns = [0] * steps, [0] * steps
    log_step = tool.log_step
    loop_t0 = pc()
    for s in range(steps):
        t0 = pc()
        metrics = model.step()
        t1 = pc()
        log_step(s, metrics)
        t2 = pc()
        step_ns[s] = t2 - t0
        log_ns[s] = t2 - t1
    loop_ns = pc() - loop_t0
    # Interleaved phase: blocks with and without logging alternate within ~50 ms, so a load
    # change on a shared machine hits both; the slowdown is the ratio of median step times.
    on_ns: list[int] = []
    off_ns: list[int] = []
    logged = 0
    for s in range(steps):
        t0 = pc()
        metrics = model.step()
        if (s // INTERLEAVE_BLOCK) % 2 == 0:
            log_step(steps + s, metrics)
            on_ns.append(pc() - t0)
            logged += 1
        else:
            off_ns.append(pc() - t0)
    call_ns = [0] * calls
    log_one = tool.log_one
    for j in range(calls):
        value = model.small_work()
        t0 = pc()
        log_one("single", value, 2 * steps + j)
        call_ns[j] = pc() - t0
    t0 = pc()
    tool.end()
    end_ns = pc() - t0
    size, files = dir_usage(run_dir) if run_dir.exists() else (0, 0)
    return {
        "start_s": start_ns / 1e9,
        "end_s": end_ns / 1e9,
        "loop_s": loop_ns / 1e9,
        "step_ns": step_ns,
        "log_ns": log_ns,
        "call_ns": call_ns,
        "interleaved_pct": 100.0 * (median(on_ns) / median(off_ns) - 1.0) if on_ns and off_ns else None,
        "bytes": size,
        "files": files,
        "points": (steps + logged) * METRICS_PER_STEP + calls,
    }


def _summarize_tool(runs: list[dict[str, Any]], base: dict[str, Any] | None) -> dict[str, Any]:
    loops = [r["loop_s"] for r in runs]
    step_medians = [median(r["step_ns"]) for r in runs]
    log_ns = [x for r in runs for x in r["log_ns"]]
    call_ns = [x for r in runs for x in r["call_ns"]]
    direct = [
        100.0 * sum(r["log_ns"]) / max(sum(r["step_ns"]) - sum(r["log_ns"]), 1) for r in runs
    ]
    out: dict[str, Any] = {
        "runs": len(runs),
        "loop_s_median": median(loops),
        "loop_s_all": [round(x, 4) for x in loops],
        "step_ms_median": median(step_medians) / 1e6,
        "direct_overhead_pct": median(direct),
        "interleaved_slowdown_pct": median(
            r["interleaved_pct"] for r in runs if r["interleaved_pct"] is not None
        ),
        "log_per_step": distribution(log_ns),
        "per_call": distribution(call_ns),
        "start_s_median": median(r["start_s"] for r in runs),
        "end_s_median": median(r["end_s"] for r in runs),
        "bytes_per_point": median(r["bytes"] / r["points"] for r in runs),
        "files_per_rank": median(r["files"] for r in runs),
        "bytes_per_run": median(r["bytes"] for r in runs),
        "points_per_run": runs[0]["points"],
    }
    if base is not None:
        base_loops = base["loops"]
        out["slowdown_pct"] = 100.0 * (median(loops) / median(base_loops) - 1.0)
        paired = [100.0 * (a / b - 1.0) for a, b in zip(loops, base_loops, strict=False)]
        out["slowdown_pct_paired_median"] = median(paired)
        out["slowdown_pct_median_step"] = 100.0 * (median(step_medians) / base["step_median"] - 1.0)
        out["per_call_net_p50_us"] = out["per_call"]["p50_us"] - base["call_p50_us"]
    return out


def run_benchmark(
    tool_names: list[str], steps: int, reps: int, calls: int, workdir: Path
) -> dict[str, Any]:
    """Alternate every available tool over ``reps`` repetitions; return the summary."""
    tools: dict[str, Tool] = {}
    report: dict[str, Any] = {}
    for name in tool_names:
        tool = ALL_TOOLS[name]()
        reason = tool.unavailable()
        entry: dict[str, Any] = {
            "available": reason is None,
            "version": package_version(tool.distribution) if tool.distribution else None,
            "per_step_api": tool.per_step_api,
            "per_call_api": tool.per_call_api,
        }
        report[name] = entry
        if reason is not None:
            entry["reason"] = reason
            continue
        try:
            loaded = tool.module in sys.modules  # a variant of a tool imported already
            t0 = time.perf_counter()
            tool.load()
            entry["import_s"] = None if loaded else time.perf_counter() - t0
            # Warm-up run, not counted: first-run costs (service start, store creation) noted apart.
            first = one_run(tool, workdir / name / "warmup", max(5, steps // 20), min(calls, 20))
            entry["first_start_s"] = first["start_s"]
            entry["first_end_s"] = first["end_s"]
            tools[name] = tool
        except Exception as exc:
            entry["available"] = False
            entry["reason"] = f"failed: {type(exc).__name__}: {exc}"

    raw: dict[str, list[dict[str, Any]]] = {name: [] for name in tools}
    names = list(tools)
    for rep in range(reps):
        for name in rotate(names, rep):
            run_dir = workdir / name / f"rep{rep}"
            try:
                raw[name].append(one_run(tools[name], run_dir, steps, calls))
            except Exception as exc:
                report[name]["error"] = f"rep {rep}: {type(exc).__name__}: {exc}"
                names.remove(name)
            shutil.rmtree(run_dir, ignore_errors=True)

    base = None
    if raw.get("none"):
        base_runs = raw["none"]
        base = {
            "loops": [r["loop_s"] for r in base_runs],
            "step_median": median(median(r["step_ns"]) for r in base_runs),
            "call_p50_us": distribution([x for r in base_runs for x in r["call_ns"]])["p50_us"],
        }
    for name, runs in raw.items():
        if runs:
            report[name].update(_summarize_tool(runs, base if name != "none" else None))
    if base is not None:
        loops = base["loops"]
        report["none"]["baseline_spread_pct"] = 100.0 * (max(loops) - min(loops)) / median(loops)
    return report


def ratios(tools: dict[str, Any], reference: str = "yprov4ml_hpc") -> dict[str, Any]:
    """Each peer's cost divided by yprov4ml_hpc's (per call p50/p99, per step mean)."""
    ref = tools.get(reference, {})
    if "per_call" not in ref:
        return {}
    out: dict[str, Any] = {}
    for name, entry in tools.items():
        if name in ("none", reference) or "per_call" not in entry:
            continue
        out[name] = {
            "per_call_p50": entry["per_call"]["p50_us"] / max(ref["per_call"]["p50_us"], 1e-9),
            "per_call_p99": entry["per_call"]["p99_us"] / max(ref["per_call"]["p99_us"], 1e-9),
            "per_step_mean": entry["log_per_step"]["mean_us"] / max(ref["log_per_step"]["mean_us"], 1e-9),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per run (default 300)")
    parser.add_argument("--reps", type=int, default=10, help="runs per tool, alternating (default 10)")
    parser.add_argument("--calls", type=int, default=200, help="single-metric calls per run (default 200)")
    parser.add_argument(
        "--tools",
        default=",".join(ALL_TOOLS),
        help=f"comma-separated subset of {','.join(ALL_TOOLS)} (unavailable ones are reported and skipped)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--out", default=None, help="write the JSON result here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    unknown = sorted(set(names) - set(ALL_TOOLS))
    if unknown:
        parser.error(f"unknown tools {unknown}; choose from {sorted(ALL_TOOLS)}")
    if "none" not in names:
        names.insert(0, "none")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_overhead_") as tmp:
        workdir = args.workdir or Path(tmp)
        cwd = os.getcwd()
        os.chdir(workdir)  # tools that write beside the script (wandb's settings) stay in scratch
        try:
            tools = run_benchmark(names, args.steps, args.reps, args.calls, workdir.resolve())
        finally:
            os.chdir(cwd)
    res = {
        "benchmark": "overhead",
        "machine": machine_info(),
        "argv": sys.argv,
        "config": {
            "steps": args.steps,
            "reps": args.reps,
            "calls_per_run": args.calls,
            "metrics_per_step": METRICS_PER_STEP,
            "model": "NumPy MLP 64x256 -> 512 -> 10, forward+backward+SGD, 1 BLAS thread",
        },
        "tools": tools,
        "ratios_vs_yprov4ml_hpc": ratios(tools),
        "seconds": time.perf_counter() - started,
    }
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
