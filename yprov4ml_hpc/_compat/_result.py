"""What ``end_run`` returns: the run directory, which also unpacks like yProv4ML 2.0.x's tuple.

2.0.x's ``end_run``/``log_provenance_documents`` returned ``(prov_json, dot, svg, crate)``
and scripts unpack it; 3.2.x returned None; ours returns the run directory.  A ``Path``
subclass serves all three: it is the directory, and iterating it gives 2.0.x's four paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .. import _constants as C

__all__ = ["RunDirectory"]

_PLAIN = type(Path())


class RunDirectory(_PLAIN):  # type: ignore[misc,valid-type]  # Path itself cannot be subclassed on 3.11
    """The run directory; ``prov, dot, svg, crate = end_run()`` unpacks as in yProv4ML 2.0.x."""

    # Paths derived from it (run_dir / "summary.json", .parent, ...) are plain paths: only the
    # directory itself unpacks.  Python 3.11 builds them with _from_parsed_parts, 3.12+ with
    # with_segments.
    @classmethod
    def _from_parsed_parts(cls, drv: str, root: str, parts: list[str]) -> Path:
        return _PLAIN._from_parsed_parts(drv, root, parts)  # type: ignore[attr-defined]

    def with_segments(self, *segments: str) -> Path:
        return Path(*segments)

    def __iter__(self) -> Iterator[Path]:
        documents = sorted(self.glob("prov_*.json"))
        document = documents[0] if documents else self / C.PROV_DOCUMENT_TEMPLATE.format(
            experiment="", run_id=""
        )
        return iter(
            (
                Path(document),
                Path(self / "graph.dot"),
                Path(self / "graph.svg"),
                Path(self / "ro-crate-metadata.json"),
            )
        )
