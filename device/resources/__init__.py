"""Data shipped inside the package and read through ``importlib.resources``.

``default.yaml`` (every setting with its default), ``inverters/<map>.yaml`` (register maps),
``models/price_<zone>.tflite`` + ``.json`` (the price forecaster) and ``prices/`` (the market
sample replayed by ``prices.source: csv``). The installer's ``/data/nattery.yaml`` and
``NATTERY_*`` variables override the defaults (``device/config.py``); nothing here is written.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_dir() -> Path:
    """The directory of the shipped data. pip unpacks wheels, so the package's resources are
    real files (LiteRT and pandas open them by path); a zipped install is refused by name."""
    root = files(__name__)
    if not isinstance(root, Path):
        raise RuntimeError(f"nattery's package data must be installed as files, not inside {root}")
    return root


RESOURCE_DIR = resource_dir()
DEFAULT_FILE = RESOURCE_DIR / "default.yaml"
MAPS_DIR = RESOURCE_DIR / "inverters"
MODELS_DIR = RESOURCE_DIR / "models"
PRICE_SAMPLE = RESOURCE_DIR / "prices" / "de_lu_sample.csv"
