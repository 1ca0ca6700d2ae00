"""Hostile run directories: a pristine run with one thing changed by hand (h5py, os)."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from yprov4ml_hpc._constants import META_DATASET

Craft = Callable[[Path], None]  # gets the run directory, changes it in place


def rank_file(run_dir: Path, rank: int = 0) -> Path:
    return run_dir / "ranks" / f"rank_{rank:06d}.h5"


def copy_run(pristine: Path, target: Path) -> Path:
    shutil.copytree(pristine, target, symlinks=True)
    for derived in [*target.glob("prov_*.json"), target / "summary.json"]:
        derived.unlink(missing_ok=True)
    return target


def on_file(change: Callable[[h5py.File], object], rank: int = 0, *, keep_meta: bool = False) -> Craft:
    """Change a rank file by hand.  Unless ``keep_meta``, its metadata record (``/meta``, a copy
    of the root attributes, series and records) goes too, so that the reader reads the crafted
    layout, as for a file written before the record existed; the record's own crafts keep it."""

    def craft(run_dir: Path) -> None:
        with h5py.File(rank_file(run_dir, rank), "r+", locking=False) as handle:
            change(handle)
            if not keep_meta and META_DATASET in handle:
                del handle[META_DATASET]

    return craft


def set_attr(key: str, value: object, rank: int = 0) -> Craft:
    return on_file(lambda h: h.attrs.__setitem__(key, value), rank)


def set_series_attr(key: str, value: object, path: str = "metrics/training/loss") -> Craft:
    return on_file(lambda h: h[path].attrs.__setitem__(key, value))


def replace(path: str, make: Callable[[h5py.File, str], object]) -> Craft:
    """Delete the object at ``path`` and put ``make(file, path)`` there instead."""

    def change(handle: h5py.File) -> None:
        del handle[path]
        make(handle, path)

    return on_file(change)


def dataset(data: object, dtype: object = None) -> Callable[[h5py.File, str], object]:
    return lambda h, p: h.create_dataset(p, data=data, dtype=dtype)


def append_record(name: str, text: str) -> Craft:
    def change(handle: h5py.File) -> None:
        target = handle[name]
        size = target.shape[0]
        target.resize((size + 1,))
        target[size] = text

    return on_file(change)


def meta_record(handle: h5py.File) -> dict[str, Any]:
    """The rank file's metadata record (``/meta``) as a JSON object."""
    raw = handle[META_DATASET][()]
    return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)


def write_meta_text(handle: h5py.File, text: str) -> None:
    del handle[META_DATASET]
    handle.create_dataset(META_DATASET, data=text, dtype=h5py.string_dtype("utf-8"))


def set_meta_text(text: str) -> Craft:
    """The record replaced by ``text`` (not necessarily JSON); the layout stays as it was."""
    return on_file(lambda h: write_meta_text(h, text), keep_meta=True)


def edit_meta(change: Callable[[dict[str, Any]], object]) -> Craft:
    """The record's JSON changed by ``change`` (in place); the layout stays as it was."""

    def craft(handle: h5py.File) -> None:
        record = meta_record(handle)
        change(record)
        write_meta_text(handle, json.dumps(record))

    return on_file(craft, keep_meta=True)


def replace_meta(make: Callable[[h5py.File, str], object]) -> Craft:
    """The record replaced by another object (a group, a link, a dataset of another shape)."""

    def craft(handle: h5py.File) -> None:
        del handle[META_DATASET]
        make(handle, META_DATASET)

    return on_file(craft, keep_meta=True)


def fifo_rank_file(run_dir: Path) -> None:
    rank_file(run_dir, 2).unlink()
    os.mkfifo(rank_file(run_dir, 2))


def directory_rank_file(run_dir: Path) -> None:
    rank_file(run_dir, 2).unlink()
    rank_file(run_dir, 2).mkdir()


def symlink_rank_file(target: str) -> Craft:
    def craft(run_dir: Path) -> None:
        rank_file(run_dir, 2).unlink()
        rank_file(run_dir, 2).symlink_to(target)

    return craft


def external_link_to_fifo(run_dir: Path) -> None:
    pipe = run_dir.parent / "pipe.h5"
    os.mkfifo(pipe)
    external_link(str(pipe))(run_dir)


def external_link(target: str, inner: str = "/data") -> Craft:
    def change(handle: h5py.File) -> None:
        del handle["metrics/training/loss/value"]
        handle["metrics/training/loss/value"] = h5py.ExternalLink(target, inner)

    return on_file(change)


class Touch:
    """Unpickling this object creates ``marker``: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def payloads(marker: Path) -> dict[str, object]:
    """Things that execute code if anyone unpickles, evals or loads them as YAML/jsonpickle."""
    blob = pickle.dumps(Touch(marker), protocol=2)
    expression = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    return {
        "pickle_bytes": np.void(blob),
        "pickle_vlen": np.frombuffer(blob, dtype=np.uint8),
        "pickle_fixed_bytes": np.bytes_(blob),
        "pickle_text": blob_text(marker),
        "eval_text": expression,
        "yaml_text": f"!!python/object/apply:os.system ['touch {marker}']",
        "jsonpickle": json.dumps(
            {"py/reduce": [{"py/function": "builtins.open"}, {"py/tuple": [str(marker), "w"]}]}
        ),
        "reduce_json": json.dumps(
            {"__reduce__": ["builtins.open", [str(marker), "w"]], "$type": "os.system"}
        ),
    }


def plant_payloads(run_dir: Path, marker: Path) -> None:
    """Put every payload everywhere a reader looks: root and series attributes, records, data."""
    items = payloads(marker)
    for rank_path in sorted((run_dir / "ranks").glob("rank_*.h5")):
        with h5py.File(rank_path, "r+", locking=False) as handle:
            for key, value in items.items():
                handle.attrs[key] = value
            # Facts the reader interprets, replaced by executable-looking text.
            for key in ("gpu_ids", "versions", "command", "user_namespace", "prov_detail", "job_id"):
                handle.attrs[key] = items["eval_text"] if key != "versions" else items["jsonpickle"]
            group = handle["metrics/training/loss"]
            for key, value in items.items():
                group.attrs[key] = value
            handle.create_dataset("pickled", data=np.void(pickle.dumps(Touch(marker))))
            handle.create_dataset("objects", data=[items["eval_text"], items["yaml_text"]],
                                  dtype=h5py.string_dtype())
            texts = {}
            for name in ("params", "artifacts", "events"):
                target = handle[name]
                size = target.shape[0]
                records = [
                    {"name": items["eval_text"], "value": items["yaml_text"], "type": "object",
                     "event": "x", "path": items["eval_text"], "role": items["eval_text"]},
                    {"name": "pickled", "value": blob_text(marker), "type": "bytes", "event": "y",
                     "__reduce__": ["builtins.open", [str(marker), "w"]], "py/object": "builtins.open"},
                ]
                target.resize((size + len(records),))
                for i, record in enumerate(records):
                    target[size + i] = json.dumps(record)
                texts[name] = [json.dumps(record) for record in records]
            # Rank 0 is read from its layout (no record); the others from their record, where
            # the same text payloads are planted.
            if rank_path.name == "rank_000000.h5":
                del handle[META_DATASET]
                continue
            meta = meta_record(handle)
            for name, planted in texts.items():
                meta["records"][name] += planted
            for key, value in items.items():
                if isinstance(value, str):
                    meta["attrs"][key] = value
            for key in ("gpu_ids", "versions", "command", "user_namespace", "prov_detail", "job_id"):
                meta["attrs"][key] = items["eval_text"] if key != "versions" else items["jsonpickle"]
            meta["series"][0]["name"] = items["eval_text"]
            write_meta_text(handle, json.dumps(meta))


def blob_text(marker: Path) -> str:
    return pickle.dumps(Touch(marker), protocol=0).decode("latin-1")
