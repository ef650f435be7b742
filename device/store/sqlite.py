"""sqlite-utils, imported without pandas and numpy.

sqlite-utils imports pandas and numpy at import time when they are installed, only to map their
scalar types to column types when it creates a table from data. The store creates every table
from an explicit schema (:mod:`device.store.schema`) and writes plain Python values, so it needs
neither; without this the bridge process would carry both (~60 MB) for nothing. A ``None`` entry
in ``sys.modules`` makes ``import`` raise ``ImportError``, which sqlite-utils treats as "not
installed"; the entries are restored at once, so other code imports them as usual.
"""

from __future__ import annotations

import sys

DATAFRAME_MODULES = ("pandas", "numpy")

_loaded = {name: sys.modules.get(name) for name in DATAFRAME_MODULES}
for _name in DATAFRAME_MODULES:
    sys.modules[_name] = None  # type: ignore[assignment]  # the documented "not importable" mark
try:
    import sqlite_utils
finally:
    for _name, _module in _loaded.items():
        if _module is None:
            del sys.modules[_name]
        else:
            sys.modules[_name] = _module

__all__ = ["sqlite_utils"]
