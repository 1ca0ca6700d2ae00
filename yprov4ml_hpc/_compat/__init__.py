"""yProv4ML compatibility: the names of yProv4ML 2.0.x/3.2.x that have no counterpart in the core.

Enums (:mod:`._enums`), the upstream positional layouts (:mod:`._layouts`), the extra
module-level functions (:mod:`._functions`), torch wrappers (:mod:`._torch`, imported only
when used), the Lightning and itwinai loggers and the outputs that ``end_run`` promises
upstream (CSV series, RO-Crate, card).  Nothing here imports torch, pandas or rocrate at
import time.
"""
