"""``python -m yprov4ml_hpc``: the same CLI as the ``yprov4ml-hpc`` command."""

from ._cli import main

raise SystemExit(main())
