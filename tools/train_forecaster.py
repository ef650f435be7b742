"""Train the price network off-device and export it as a quantised LiteRT model.

    python -m tools.train_forecaster --prices PRICES.csv [--prices MORE.csv] [--exog EXOG.csv ...] \
        [--until YYYY-MM-DD] --out device/resources/models/price_de_lu.tflite

Needs the ``train`` extra (TensorFlow). Trains an ensemble of small MLPs on every delivery day
up to ``--until`` (inclusive; default: all data), each with early stopping on its own random
validation split, averages them inside one graph and converts it with dynamic-range int8
quantisation. Writes ``<out>`` and ``<out stem>.json`` (inputs, scales, provenance, and the
intra-hour shape of :mod:`device.forecast.intrahour` fitted on the quarter-hour days among the
training days, if any: the device's prior). Several ``--prices``/``--exog`` files are joined in
time order (an hourly history followed by quarter-hours); hours are their quarter-hours' mean.

Inputs per delivery day are those of :mod:`device.forecast.network`. Days where an exogenous
series is missing are kept (its presence flag is off), and a copy of the training set with series
hidden at random teaches the network to work without any of them.
"""

from __future__ import annotations

import os

# One BLAS thread: the daily refits are many small problems, and a multi-threaded OpenBLAS on a
# shared 2-core machine (or a Pi running the app) spends more time contending than computing.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import datetime as dt
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from common.utc import format_utc
from device.forecast import intrahour
from device.forecast.daily import has_quarters
from device.forecast.features import FeatureSpec, build_blocks, default_spec
from device.forecast.history import MarketHistory, read_csv
from device.forecast.network import ModelMeta, network_inputs, recent_price_scale

PRICE_WINDOW = 28
HIDE_PROBABILITY = 0.3


def exog_scales(history: MarketHistory, spec: FeatureSpec, last_row: int) -> dict[str, tuple[float, float]]:
    scales = {}
    for name in spec.exog_names:
        if name in spec.price_like:
            continue
        values = history.exog[name][: last_row + 1]
        values = values[np.isfinite(values)]
        median = float(np.median(values))
        mad = float(np.median(np.abs(values - median)) * 1.4826) or 1.0
        scales[name] = (median, mad)
    return scales


def training_set(history: MarketHistory, meta: ModelMeta, last_row: int) -> tuple[np.ndarray, np.ndarray]:
    spec = meta.spec
    targets = np.arange(max(spec.max_lag, meta.price_window), last_row + 1)
    known = np.isfinite(history.prices).all(axis=1)
    lags = np.array(spec.price_lags)
    # complete days whose lagged days are complete too (a gap in the data is no training example)
    targets = targets[known[targets] & known[targets[:, None] - lags].all(axis=1)]
    blocks = build_blocks(spec, history.prices, history.exog, targets, history.first_weekday)
    scale = recent_price_scale(history.prices, targets, meta.price_window)
    x = network_inputs(meta, blocks, scale)
    y = scale.transform(history.prices[targets]).astype(np.float32)
    return x, y


def hide_at_random(x: np.ndarray, spec: FeatureSpec, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``x`` with each exogenous series hidden (zeros, flag off) with some probability."""
    x = x.copy()
    offset = len(spec.price_lags) * 24
    flags_at = offset + sum(len(lags) * 24 for _, lags in spec.exog)
    for k, (_, lags) in enumerate(spec.exog):
        width = len(lags) * 24
        hide = rng.random(len(x)) < HIDE_PROBABILITY
        x[hide, offset : offset + width] = 0.0
        x[hide, flags_at + k] = 0.0
        offset += width
    return x


def train(x: np.ndarray, y: np.ndarray, members: int, seed: int, verbose: int) -> tuple[object, list[float]]:
    import tensorflow as tf
    from tensorflow import keras

    tf.config.threading.set_intra_op_parallelism_threads(2)
    inputs = keras.Input(shape=(x.shape[1],), name="features")
    outputs = []
    val_losses = []
    for m in range(members):
        keras.utils.set_random_seed(seed + m)
        rng = np.random.default_rng(seed + m)
        val = rng.random(len(x)) < 0.2
        net = keras.Sequential(
            [
                keras.layers.Dense(128, activation="relu", kernel_regularizer=keras.regularizers.l2(1e-5)),
                keras.layers.Dropout(0.1),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(24),
            ],
            name=f"member{m}",
        )
        net.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae")
        stop = keras.callbacks.EarlyStopping(patience=25, restore_best_weights=True)
        hist = net.fit(
            x[~val], y[~val], validation_data=(x[val], y[val]), epochs=400, batch_size=64,
            callbacks=[stop], verbose=verbose,
        )
        val_losses.append(float(min(hist.history["val_loss"])))
        outputs.append(net(inputs))
    mean = keras.layers.Average(name="ensemble")(outputs) if members > 1 else outputs[0]
    return keras.Model(inputs, mean), val_losses


def export(model: object, path: Path) -> None:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
    path.write_bytes(converter.convert())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prices", type=Path, action="append", required=True, help="repeatable")
    parser.add_argument("--exog", type=Path, action="append", default=[], help="repeatable")
    parser.add_argument("--until", type=dt.date.fromisoformat, help="last delivery day to train on")
    parser.add_argument("--out", type=Path, required=True, help="model file (.tflite)")
    parser.add_argument("--tz", default="Europe/Berlin")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lear-weight", type=float, default=0.5)
    parser.add_argument("--exclude", action="append", default=[], help="exogenous series to leave out")
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    started = time.monotonic()
    history = read_csv(args.prices, args.exog or None, args.tz)
    history = MarketHistory(
        days=history.days, prices=history.prices,
        exog={k: v for k, v in history.exog.items() if k not in args.exclude}, quarters=history.quarters,
    )
    last_row = history.last_complete_price_row()
    if args.until is not None:
        last_row = min(last_row, history.row(args.until))
    spec = default_spec(list(history.exog))
    quarters = history.quarters[: last_row + 1] if history.quarters is not None else np.empty((0, 24, 4))
    quarter_days = int(has_quarters(quarters).sum())
    shape = intrahour.fit(quarters, intrahour.ramp(), window=len(quarters)) if quarter_days else None
    meta = ModelMeta(spec=spec, price_window=PRICE_WINDOW, exog_scale=exog_scales(history, spec, last_row),
                     lear_weight=args.lear_weight, info={}, intrahour=shape)
    x, y = training_set(history, meta, last_row)
    rng = np.random.default_rng(args.seed)
    x_all = np.vstack([x, hide_at_random(x, spec, rng)])
    y_all = np.vstack([y, y])
    model, val_losses = train(x_all, y_all, args.members, args.seed, args.verbose)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    export(model, args.out)
    import tensorflow as tf

    info = {
        "trained_at": format_utc(),
        "prices": [p.name for p in args.prices],
        "prices_sha256": [hashlib.sha256(p.read_bytes()).hexdigest() for p in args.prices],
        "exog": [p.name for p in args.exog],
        "intrahour_days": quarter_days,
        "first_day": str(history.day(int(max(spec.max_lag, PRICE_WINDOW)))),
        "trained_until": str(history.day(last_row)),
        "training_days": len(x),
        "members": args.members,
        "seed": args.seed,
        "validation_mae_scaled": val_losses,
        "tensorflow": tf.__version__,
        "command": "python -m tools.train_forecaster " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    meta = ModelMeta(spec=meta.spec, price_window=meta.price_window, exog_scale=meta.exog_scale,
                     lear_weight=meta.lear_weight, info=info, intrahour=meta.intrahour)
    args.out.with_suffix(".json").write_text(json.dumps(meta.to_json(), indent=2) + "\n")
    print(f"{args.out}: {args.out.stat().st_size} bytes, {len(x)} days up to {info['trained_until']}, "
          f"validation MAE (scaled) {np.mean(val_losses):.4f}, {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
