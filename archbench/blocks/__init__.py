"""Block families, stems, downsampling layers and heads; importing this package registers them all.

One module per family, named after the paper's term (``gnconv.py``, ``focal.py`` …); each module
registers its layers with :func:`archbench.registry.register` at import time.
"""
from __future__ import annotations

import importlib
import pkgutil

# Discovered rather than listed, so adding a family is adding one file.
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")):
    importlib.import_module(f"{__name__}.{_module}")
