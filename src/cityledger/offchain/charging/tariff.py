"""Tariffs and the one pricing function: running cost, final bill and voucher amount all call it.

A tariff is three integer prices in micro-credits: per kWh, per minute, per session. Energy is
counted in whole Wh and time in whole seconds, so the cost is integer arithmetic, floored once per
term; no float ever reaches a bill (CitrineOS's running cost disagreed with its final bill because
two code paths priced the same session).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_PRICE_MICRO = 10**12  # any one tariff price, micro-credits (a million credits)
WH_PER_KWH = 1000
S_PER_MINUTE = 60


@dataclass(frozen=True)
class Tariff:
    """Prices in integer micro-credits."""

    per_kwh_micro: int
    per_minute_micro: int = 0
    per_session_micro: int = 0

    def __post_init__(self) -> None:
        for name in ("per_kwh_micro", "per_minute_micro", "per_session_micro"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= MAX_PRICE_MICRO:
                raise ValueError(f"{name}: expected an integer 0 to {MAX_PRICE_MICRO}, got {value!r}")


def compute_cost_micro(tariff: Tariff, energy_wh: int, duration_s: int) -> int:
    """What a session that delivered `energy_wh` over `duration_s` costs, in micro-credits."""
    if energy_wh < 0 or duration_s < 0:
        raise ValueError(f"energy_wh, duration_s: expected >= 0, got {energy_wh}, {duration_s}")
    return (tariff.per_session_micro
            + tariff.per_kwh_micro * energy_wh // WH_PER_KWH
            + tariff.per_minute_micro * duration_s // S_PER_MINUTE)
