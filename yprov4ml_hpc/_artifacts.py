"""Copying logged artifacts into the run directory, safely.

A user's artifact name can be anything (``../../etc/passwd``, ``/abs/path``, ``C:\\x``);
it is reduced to a relative path of plain components, and the destination is checked to
lie inside ``artifacts/rank_NNNNNN/`` before anything is written.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath

from ._errors import ConfigError, StorageError, Yprov4mlError

__all__ = ["copy_artifact", "ensure_rank_dir", "file_digest", "safe_relative_name"]

_HASH_BLOCK = 1 << 20
_NAME_MAX = 255  # bytes of one path component (ext4, xfs, Lustre, GPFS)
_PATH_MAX = 4096  # bytes of a whole path (Linux)


def safe_relative_name(name: str) -> PurePosixPath:
    """Map any artifact name to a relative path that cannot leave its folder.

    A component longer than the file system allows (``NAME_MAX``, 255 bytes) is shortened
    deterministically to a prefix, a hash of the whole component and its suffix, so two
    long names that differ anywhere stay distinct.  The record keeps the original name.
    """
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    parts = [_short_component(p.replace(":", "_")) for p in parts]
    if not parts:
        raise ConfigError(
            f"artifact name {name!r} has no usable path component; pass a name such as 'model.pt'"
        )
    return PurePosixPath(*parts)


def _short_component(part: str) -> str:
    raw = part.encode("utf-8", "surrogatepass")
    if len(raw) <= _NAME_MAX:
        return part
    tag = "~" + hashlib.sha256(raw).hexdigest()[:16]
    suffix = PurePosixPath(part).suffix
    if len(suffix.encode("utf-8", "surrogatepass")) > 16:
        suffix = ""
    room = _NAME_MAX - len(tag.encode()) - len(suffix.encode("utf-8", "surrogatepass"))
    prefix = raw[:room].decode("utf-8", "ignore")  # never split a character
    return prefix + tag + suffix


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
    """Copy ``source`` (file or folder) to ``dest_root/<safe name>``; return the destination.

    ``dest_root`` is the rank's folder ``artifacts/rank_NNNNNN``: it is created if missing,
    but only below an existing ``artifacts/`` (a deleted run directory is never re-created).
    """
    dest = dest_root / safe_relative_name(name)
    if len(os.fsencode(dest)) >= _PATH_MAX:
        raise ConfigError(
            f"artifact name {name!r} gives a path of {len(os.fsencode(dest))} bytes under {dest_root}, "
            f"over the file system's limit of {_PATH_MAX}; pass a shorter name"
        )
    try:
        return _copy(source, dest_root, dest, name)
    except Yprov4mlError:
        raise
    except OSError as exc:
        raise StorageError(
            f"cannot copy artifact {name!r} to {dest}: {exc}; check free space and quotas, "
            "and that the run directory still exists"
        ) from exc


def ensure_rank_dir(dest_root: Path) -> None:
    """Create ``artifacts/rank_NNNNNN`` if needed, refusing to re-create ``artifacts/`` itself."""
    if dest_root.is_dir():
        return
    if not dest_root.parent.is_dir():
        raise StorageError(
            f"the artifacts folder {dest_root.parent} is gone (run directory deleted or moved?); "
            "artifacts cannot be stored in this run"
        )
    dest_root.mkdir(exist_ok=True)


def _copy(source: Path, dest_root: Path, dest: Path, name: str) -> Path:
    ensure_rank_dir(dest_root)
    root = dest_root.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.parent.resolve().is_relative_to(root):  # a symlinked folder inside the run dir
        raise ConfigError(f"artifact name {name!r} resolves outside the run directory")
    if dest.is_symlink():
        dest.unlink()
    if source.is_dir():
        if dest.exists():
            shutil.rmtree(dest)
        # Copies are new files of this run: they get the run's permissions (the umask), not
        # the source's (a private 0700 folder would otherwise hide them from the group).
        shutil.copytree(source, dest, symlinks=True, copy_function=shutil.copyfile)
        folder_mode = dest_root.stat().st_mode & 0o7777  # made by us: the umask's folder mode
        for folder, _dirs, _files in os.walk(dest):
            os.chmod(folder, folder_mode)
    else:
        shutil.copyfile(source, dest)
    return dest
