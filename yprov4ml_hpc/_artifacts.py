"""Copying logged artifacts into the run directory, safely.

A user's artifact name can be anything (``../../etc/passwd``, ``/abs/path``, ``C:\\x``);
it is reduced to a relative path of plain components, and the destination is checked to
lie inside ``artifacts/rank_NNNNNN/`` before anything is written.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path, PurePosixPath

from ._errors import ConfigError

__all__ = ["copy_artifact", "file_digest", "safe_relative_name"]

_HASH_BLOCK = 1 << 20


def safe_relative_name(name: str) -> PurePosixPath:
    """Map any artifact name to a relative path that cannot leave its folder."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    parts = [p.replace(":", "_") for p in parts]
    if not parts:
        raise ConfigError(
            f"artifact name {name!r} has no usable path component; pass a name such as 'model.pt'"
        )
    return PurePosixPath(*parts)


def file_digest(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, or of a directory (over sorted relative paths and contents)."""
    digest = hashlib.sha256()
    if path.is_dir():
        size = 0
        for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = child.relative_to(path).as_posix()
            digest.update(rel.encode("utf-8") + b"\0")
            child_size, child_hash = file_digest(child)
            digest.update(bytes.fromhex(child_hash))
            size += child_size
        return size, digest.hexdigest()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def copy_artifact(source: Path, dest_root: Path, name: str) -> Path:
    """Copy ``source`` (file or folder) to ``dest_root/<safe name>``; return the destination."""
    dest = dest_root / safe_relative_name(name)
    root = dest_root.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.parent.resolve().is_relative_to(root):  # a symlinked folder inside the run dir
        raise ConfigError(f"artifact name {name!r} resolves outside the run directory")
    if dest.is_symlink():
        dest.unlink()
    if source.is_dir():
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(source, dest, symlinks=True)
    else:
        shutil.copyfile(source, dest)
    return dest
