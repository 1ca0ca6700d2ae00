"""What code ran: a git commit when there is one, else hashes of the source files."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["describe_source"]

_SKIP_DIRS = {
    ".git",
    "__pycache__",
    ".venv",
    "venv",
    "env",
    ".tox",
    ".nox",
    "node_modules",
    "site-packages",
    "dist-packages",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
}
_SOURCE_SUFFIXES = {".py", ".sh", ".slurm", ".yaml", ".yml", ".toml", ".json", ".cfg", ".ini", ".txt"}
_MAX_FILES = 2000
_MAX_FILE_BYTES = 5 << 20


def _git(path: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _hash_files(root: Path) -> tuple[dict[str, str], bool]:
    """sha256 of source-like files under root, skipping environments and caches."""
    hashes: dict[str, str] = {}
    truncated = False
    candidates = [root] if root.is_file() else sorted(root.rglob("*"))
    for path in candidates:
        rel_parts = path.relative_to(root).parts if path != root else ()
        if any(part in _SKIP_DIRS or part.endswith(".egg-info") for part in rel_parts):
            continue
        if not path.is_file() or path.is_symlink() or path.suffix not in _SOURCE_SUFFIXES:
            continue
        if path.stat().st_size > _MAX_FILE_BYTES:
            continue
        if len(hashes) >= _MAX_FILES:
            truncated = True
            break
        key = path.name if path == root else path.relative_to(root).as_posix()
        hashes[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes, truncated


def describe_source(path: Path) -> dict[str, Any]:
    """Describe the code at ``path``: git commit/branch/dirty, or file hashes outside git."""
    path = path.resolve()
    folder = path if path.is_dir() else path.parent
    info: dict[str, Any] = {"path": str(path)}
    commit = _git(folder, "rev-parse", "HEAD")
    if commit:
        info["git_commit"] = commit
        info["git_branch"] = _git(folder, "rev-parse", "--abbrev-ref", "HEAD")
        status = _git(folder, "status", "--porcelain", "--untracked-files=no")
        info["git_dirty"] = bool(status)
        remote = _git(folder, "config", "--get", "remote.origin.url")
        if remote:
            info["git_remote"] = remote
        return info
    files, truncated = _hash_files(path)
    info["files"] = files
    info["truncated"] = truncated
    return info
