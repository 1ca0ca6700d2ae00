"""The one way any command writes a file: atomically, and never through a planted symlink.

A run directory may come from anyone (copied from a shared project space, unpacked from an
archive).  Writing ``<run>/summary.json`` with a plain ``open(path, "w")`` follows a symlink
planted under that name and overwrites whatever it points to.  Every output goes through
:func:`replacing`: a new temporary file beside the target, created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` (so neither a stale file nor a link is reused), written, then
renamed over the target: the name is replaced, a link there is never written through, and a
reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ._errors import StorageError

__all__ = ["output_folder", "replacing", "write_replacing"]

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[BinaryIO]:
    """Yield a new binary file that becomes ``target`` when the block ends without error (the
    temporary is removed otherwise).  h5py can write into it directly (``h5py.File(f, "w")``)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a stale temporary (or a planted link): removed, never followed
    fd = os.open(tmp, _FLAGS, 0o666)
    try:
        with os.fdopen(fd, "w+b") as handle:
            yield handle
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_replacing(target: Path, data: str | bytes) -> int:
    """Write ``data`` (text as UTF-8) as ``target`` through :func:`replacing`; returns bytes."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with replacing(target) as handle:
        handle.write(raw)
    return len(raw)


def output_folder(path: Path) -> Path:
    """Create the folder ``path`` (and its parents) to write into; refuse one that is a symlink,
    which a crafted run directory could point anywhere."""
    if path.is_symlink():
        raise StorageError(f"{path} is a symlink; refusing to write through it (remove it or pass -o)")
    path.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or not path.is_dir():
        raise StorageError(f"{path} is not a plain folder; refusing to write into it")
    return path
