"""Integrations with training frameworks, one module each, imported only when asked for.

- :mod:`yprov4ml_hpc.integrations.lightning`: ``Yprov4mlLogger``, a PyTorch Lightning logger.

Nothing is imported here, so ``import yprov4ml_hpc`` never loads a framework.
"""

__all__: list[str] = []
