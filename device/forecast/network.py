"""The network half of the forecaster: inputs, the LiteRT interpreter and the model metadata.

The network has frozen weights (trained off-device by ``tools/train_forecaster.py``), so its
inputs are made level-free: prices (and EXAA) are scaled by the median/MAD of the last
``price_window`` days known at forecast time, then asinh-transformed, and the network predicts
tomorrow in that same scale. A price regime it never saw (2022) is then a change of scale, not an
extrapolation. Each exogenous series comes with a presence flag; training hides series at random,
so one network serves zones and days without EXAA, offshore wind or any forecasts at all.

A model is two files: ``<name>.tflite`` (an ensemble of small MLPs averaged inside the graph,
dynamic-range int8 quantised) and ``<name>.json`` (the metadata below).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from device.forecast.features import AsinhScaler, Blocks, FeatureSpec, weekday_onehot
from device.forecast.intrahour import IntraHourModel

try:  # LiteRT is the supported runtime; tflite_runtime only for older images
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
except ImportError:  # pragma: no cover - depends on the image
    from tflite_runtime.interpreter import Interpreter, OpResolverType  # type: ignore[no-redef]


@dataclass(frozen=True)
class ModelMeta:
    """Everything needed to build the inputs a network was trained on."""

    spec: FeatureSpec
    price_window: int  # days of known prices for the median/MAD scale
    exog_scale: dict[str, tuple[float, float]]  # non-price exogenous: (median, MAD) from training
    lear_weight: float  # share of the recalibrated linear model in the blend
    info: dict[str, Any]  # provenance: data, trained_until, validation figures, versions
    intrahour: IntraHourModel | None = None  # fitted on the training data's quarter-hour days

    def to_json(self) -> dict[str, Any]:
        out = {
            "spec": self.spec.to_json(),
            "price_window": self.price_window,
            "exog_scale": {k: list(v) for k, v in self.exog_scale.items()},
            "lear_weight": self.lear_weight,
            "info": self.info,
        }
        if self.intrahour is not None:
            out["intrahour"] = self.intrahour.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelMeta:
        return cls(
            spec=FeatureSpec.from_json(data["spec"]),
            price_window=int(data["price_window"]),
            exog_scale={k: (float(v[0]), float(v[1])) for k, v in data["exog_scale"].items()},
            lear_weight=float(data["lear_weight"]),
            info=dict(data.get("info", {})),
            intrahour=IntraHourModel.from_json(data["intrahour"]) if "intrahour" in data else None,
        )


def recent_price_scale(prices: np.ndarray, targets: np.ndarray, window: int) -> AsinhScaler:
    """Per target row, the median/MAD of the known prices of the ``window`` days before it.

    The scaler's arrays have shape (n, 1), so it transforms (n, 24) day rows directly.
    """
    med = np.empty(len(targets))
    mad = np.empty(len(targets))
    for i, t in enumerate(targets):
        recent = prices[max(0, t - window) : t]
        recent = recent[np.isfinite(recent)]
        scale = AsinhScaler.fit(recent) if recent.size else AsinhScaler(0.0, 1.0)
        med[i], mad[i] = float(scale.median), float(scale.mad)
    return AsinhScaler(median=med[:, None], mad=mad[:, None])


def network_inputs(meta: ModelMeta, blocks: Blocks, scale: AsinhScaler) -> np.ndarray:
    """The network's input rows (float32), one per target day; missing series are flagged off."""
    n = len(blocks.weekday)
    med = np.asarray(scale.median).reshape(n, 1, 1)
    mad = np.asarray(scale.mad).reshape(n, 1, 1)
    parts = [np.arcsinh((blocks.prices - med) / mad).reshape(n, -1)]
    flags = []
    for name in meta.spec.exog_names:
        block = blocks.exog[name]
        if name in meta.spec.price_like:
            z = np.arcsinh((block - med) / mad)
        else:
            centre, spread = meta.exog_scale[name]
            z = np.arcsinh((block - centre) / spread)
        present = np.isfinite(z).all(axis=(1, 2))
        z = np.where(present[:, None, None], np.nan_to_num(z), 0.0)
        parts.append(z.reshape(n, -1))
        flags.append(present.astype(float))
    parts.append(np.stack(flags, axis=1) if flags else np.zeros((n, 0)))
    parts.append(weekday_onehot(blocks.weekday))
    x = np.concatenate(parts, axis=1)
    # a price lag that is unknown (short history) is set to the window median (0 after scaling)
    return np.nan_to_num(x, nan=0.0).astype(np.float32)


class Network:
    """A LiteRT interpreter for one model file; ``run`` maps input rows to scaled outputs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bytes = path.stat().st_size
        # Without the default XNNPACK delegate: it prints an INFO banner on stderr past our log,
        # and the small network is as fast without it (~5 µs per inference either way).
        self._interpreter = Interpreter(
            model_path=str(path), num_threads=1,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]

    @property
    def input_width(self) -> int:
        return int(self._input["shape"][-1])

    def run(self, rows: np.ndarray) -> np.ndarray:
        """Outputs (n, 24) in the asinh scale, one interpreter call per row (batch 1 on device)."""
        if rows.shape[1] != self.input_width:
            raise ValueError(f"{self.path.name}: expects {self.input_width} inputs, got {rows.shape[1]}")
        out = []
        for row in rows:
            self._interpreter.set_tensor(self._input["index"], row[None, :])
            self._interpreter.invoke()
            out.append(self._interpreter.get_tensor(self._output["index"])[0].copy())
        return np.asarray(out, dtype=float)


def load_meta(path: Path) -> ModelMeta:
    """Metadata of model ``path`` (``x.tflite`` → ``x.json``)."""
    meta_path = path.with_suffix(".json")
    try:
        return ModelMeta.from_json(json.loads(meta_path.read_text()))
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{meta_path}: unreadable model metadata ({exc})") from exc
