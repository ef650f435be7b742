from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from device.config import ConfigError, GridFeeWindow, TariffSettings
from device.prices.tariff import Tariff


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp())


def test_german_example_by_hand() -> None:
    tariff = Tariff(TariffSettings())
    # 80 EUR/MWh spot: (80 + 15 + 100 + 32.34 + 20.5) × 1.19 = 294.9296 EUR/MWh = 29.49 ct/kWh
    price = tariff.import_price([epoch("2024-06-01T10:00:00Z")], [80.0])
    assert price[0] == pytest.approx(294.9296)
    assert tariff.export_price([0], [80.0])[0] == 79.4
    assert tariff.export_price([0], [-5.0])[0] == 0.0  # zero while spot < 0


def test_spot_based_export_with_fee_and_negative_rule() -> None:
    settings = TariffSettings(export="spot", export_fee_eur_mwh=4.0, export_zero_when_negative=False)
    prices = Tariff(settings).export_price([0, 0], [50.0, -20.0])
    assert prices.tolist() == [46.0, -24.0]


def test_a_community_price_values_the_export_the_planner_sees() -> None:
    alone = Tariff(TariffSettings())
    assert alone.export_value([0, 0], [80.0, -5.0]).tolist() == [79.4, 0.0]  # no community: the feed-in
    member = Tariff(TariffSettings(community_price_eur_mwh=180.0, community_share_pct=40.0))
    # 40 % sold to the neighbours at 18 ct/kWh, 60 % fed in at 7.94 ct/kWh (0 while spot < 0)
    assert member.export_value([0, 0], [80.0, -5.0]).tolist() == pytest.approx([0.4 * 180 + 0.6 * 79.4, 0.4 * 180])
    assert member.export_price([0], [80.0]).tolist() == [79.4]  # settlement stays with the grid's feed-in


def test_time_windows_follow_local_time_across_dst() -> None:
    windows = (
        GridFeeWindow(start="17:00", end="21:00", fee_eur_mwh=150.0),
        GridFeeWindow(start="22:00", end="06:00", fee_eur_mwh=30.0, months=(1, 2, 12)),
    )
    tariff = Tariff(TariffSettings(grid_fee_windows=windows))
    stamps = [
        epoch("2024-01-15T16:00:00Z"),  # 17:00 CET: high
        epoch("2024-01-15T15:45:00Z"),  # 16:45 CET: base
        epoch("2024-07-15T15:00:00Z"),  # 17:00 CEST: high (summer offset)
        epoch("2024-07-15T19:00:00Z"),  # 21:00 CEST: base (end exclusive)
        epoch("2024-01-15T22:30:00Z"),  # 23:30 CET in January: low, window crosses midnight
        epoch("2024-07-15T22:30:00Z"),  # 00:30 CEST in July: window not active in July → base
    ]
    assert tariff.grid_fee(stamps).tolist() == [150.0, 100.0, 150.0, 100.0, 30.0, 100.0]


@pytest.mark.parametrize(
    "window, message",
    [
        (GridFeeWindow(start="25:00", end="06:00"), r"grid_fee_windows\[0\].start: got '25:00', expected"),
        (GridFeeWindow(start="7", end="08:00"), r"grid_fee_windows\[0\].start: got '7'"),
        (GridFeeWindow(start="08:00", end="08:00"), "window is empty"),
        (GridFeeWindow(start="08:00", end="09:00", months=(13,)), r"months: got 13, allowed: 1 to 12"),
    ],
)
def test_bad_windows_name_key_and_value(window: GridFeeWindow, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Tariff(TariffSettings(grid_fee_windows=(window,)))


def test_windows_from_yaml_config(tmp_path: Path) -> None:
    from device import config

    path = tmp_path / "nattery.yaml"
    path.write_text(
        "tariff:\n  grid_fee_windows:\n    - {start: '17:00', end: '21:00', fee_eur_mwh: 150}\n"
    )
    cfg = config.load([config.DEFAULT_FILE, path], environ={})
    tariff = Tariff(cfg.tariff)
    assert tariff.grid_fee(np.array([epoch("2024-01-15T16:30:00Z")]))[0] == 150.0
