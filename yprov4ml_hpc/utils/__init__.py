"""yProv4ML's ``utils`` modules users import: ``getters`` (3.x) and ``prov_getters`` (2.x).

    from yprov4ml_hpc.utils import getters        # was: from yprov4ml.utils import getters

They read this project's documents and rank files and return what yProv4ML's return
(pandas DataFrames where upstream does: the ``pandas`` extra).  Importing them is light;
pandas is imported by the functions that build a DataFrame.
"""

__all__ = ["getters", "prov_getters"]
