"""The one output writer: atomic, and never through a symlink (the target's or the temporary's)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest

from yprov4ml_hpc._errors import StorageError
from yprov4ml_hpc._output import output_folder, replacing, write_replacing


def test_planted_links_are_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").symlink_to(victim)
    (run / f".summary.json.{os.getpid()}.tmp").symlink_to(victim)  # the temporary's name too
    assert write_replacing(run / "summary.json", "{}\n") == 3
    assert victim.read_text() == "keep me"
    assert not (run / "summary.json").is_symlink() and (run / "summary.json").read_text() == "{}\n"
    assert sorted(p.name for p in run.iterdir()) == ["summary.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "graph.dot"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as handle:
        handle.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["graph.dot"]


def test_h5py_writes_into_the_replacing_file(tmp_path: Path) -> None:
    target = tmp_path / "consolidated.h5"
    with replacing(target) as handle, h5py.File(handle, "w") as out:
        out.attrs["schema"] = "x"
    with h5py.File(target, "r") as back:
        assert back.attrs["schema"] == "x"


def test_output_folder_refuses_a_link(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "plots").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(StorageError, match="symlink"):
        output_folder(tmp_path / "plots")
    assert output_folder(tmp_path / "a" / "b").is_dir()
