"""A simulated BMS: the Annex VII / Art. 14 values of one battery, from the shipped ageing tables, numpy only.

The tables (ageing_tables/*.json) come from a PyBaMM simulation run offline (tools/ageing.py,
`cityledger battery ageing`): state of health, DC resistance increase and round-trip efficiency of a
cell against full equivalent cycles (FEC) at one temperature, and a calendar term k·√days. Here a
battery's capacity loss is the cycling loss at its FEC plus the calendar loss at its age
(superposition of cycle and calendar ageing), interpolated linearly between the tables' temperatures
and scaled by the battery's own spread factor, so two batteries of one model age alike but not
identically. Nothing here imports PyBaMM or reads the clock: a day is a step the caller takes.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TABLE_DIR = Path(__file__).parent / "ageing_tables"
TABLE_FORMAT = "cityledger/ageing-table/1"
# The pack the simulated BMS manages: 96 cells in series, 40 strings in parallel (about 70 kWh of
# LG M50T cells: an ordinary EV pack).
PACK_SERIES = 96
PACK_PARALLEL = 40
NOMINAL_CELL_VOLTAGE_V = 3.63
RATED_PACK_POWER_W = 150_000
SELF_DISCHARGE_PCT = 2.0  # % of capacity a month at 25 °C, a fresh cell; it grows with resistance
SPREAD_SIGMA = 0.08  # the per-battery ageing factor is lognormal with this σ: about ±8 %
CLIMATE_MEAN_C = 15.0  # where the city's batteries live: a mean cell temperature and its spread
CLIMATE_SIGMA_C = 5.0
DAILY_KM_MEAN = 38.0  # a city car (km a day), and its spread between drivers
DAILY_KM_SIGMA = 14.0
KWH_PER_KM = 0.17
NEGATIVE_EVENT_CHANCE = 0.002  # a day's chance of a negative event (deep discharge, over-temperature, ...)
NEGATIVE_EVENTS = ("deep discharge below the lower voltage limit", "cell over-temperature", "charging fault")
MAX_BATTERIES = 1_000_000
MAX_DAYS = 20 * 366


class AgeingDataError(ValueError):
    """A shipped table is missing or malformed."""


@dataclass(frozen=True)
class AgeingTable:
    """One chemistry at one temperature: the columns of a table as numpy arrays."""

    chemistry: str
    temperature_c: float
    capacity_ah: float  # the fresh cell
    resistance_ohm: float
    fec: np.ndarray
    soh_pct: np.ndarray
    resistance_increase_pct: np.ndarray
    efficiency_fec: np.ndarray
    efficiency_pct: np.ndarray
    calendar_k: float  # capacity loss % = calendar_k · √days

    def at(self, fec: float, days: float) -> tuple[float, float, float]:
        """(capacity loss %, resistance increase %, round-trip efficiency %) at `fec` cycles and `days` of age."""
        loss = _extrapolate(fec, self.fec, 100.0 - self.soh_pct) + self.calendar_k * math.sqrt(max(days, 0.0))
        resistance = _extrapolate(fec, self.fec, self.resistance_increase_pct)
        efficiency = float(np.interp(fec, self.efficiency_fec, self.efficiency_pct))
        return loss, resistance, efficiency


def _extrapolate(x: float, xs: np.ndarray, ys: np.ndarray) -> float:
    """Linear interpolation, continued past the last row along the last segment's slope."""
    if x <= xs[-1]:
        return float(np.interp(x, xs, ys))
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return float(ys[-1] + slope * (x - xs[-1]))


def parse_table(data: dict[str, Any]) -> AgeingTable:
    """A table from its JSON form; raise AgeingDataError naming the field."""
    if data.get("format") != TABLE_FORMAT:
        raise AgeingDataError(f"format: expected {TABLE_FORMAT!r}, got {data.get('format')!r}")
    rows = np.asarray(data.get("rows", []), dtype=float)
    efficiency = np.asarray(data.get("efficiency_rows", []), dtype=float)
    if rows.ndim != 2 or rows.shape[0] < 2 or rows.shape[1] != 3 or np.any(np.diff(rows[:, 0]) <= 0):
        raise AgeingDataError("rows: expected at least two [fec, soh %, resistance %] rows, fec increasing")
    if efficiency.ndim != 2 or efficiency.shape[0] < 1 or efficiency.shape[1] != 2:
        raise AgeingDataError("efficiency_rows: expected [fec, efficiency %] rows")
    return AgeingTable(data["chemistry"], float(data["temperature_c"]), float(data["capacity_ah"]),
                       float(data["resistance_ohm"]), rows[:, 0], rows[:, 1], rows[:, 2], efficiency[:, 0],
                       efficiency[:, 1], float(data["calendar"]["k_pct_per_sqrt_day"]))


@functools.cache
def load_tables(chemistry: str, directory: Path = TABLE_DIR) -> tuple[AgeingTable, ...]:
    """Every shipped table of `chemistry`, coldest first; raise AgeingDataError if there is none."""
    tables = [parse_table(json.loads(path.read_text())) for path in sorted(directory.glob(f"{chemistry}_*C.json"))]
    if not tables:
        raise AgeingDataError(f"chemistry: no ageing table for {chemistry!r} in {directory}")
    return tuple(sorted(tables, key=lambda t: t.temperature_c))


def chemistries(directory: Path = TABLE_DIR) -> list[str]:
    """The chemistries with a shipped table."""
    return sorted({path.name.split("_")[0] for path in directory.glob("*_*C.json")})


def interpolate(tables: tuple[AgeingTable, ...], temperature_c: float, fec: float,
                days: float) -> tuple[float, float, float]:
    """AgeingTable.at, linearly between the two tables around `temperature_c` (clamped to the range)."""
    temps = [t.temperature_c for t in tables]
    if temperature_c <= temps[0] or len(tables) == 1:
        return tables[0].at(fec, days)
    if temperature_c >= temps[-1]:
        return tables[-1].at(fec, days)
    upper = next(i for i, t in enumerate(temps) if t >= temperature_c)
    w = (temperature_c - temps[upper - 1]) / (temps[upper] - temps[upper - 1])
    low, high = tables[upper - 1].at(fec, days), tables[upper].at(fec, days)
    return tuple((1 - w) * a + w * b for a, b in zip(low, high))  # type: ignore[return-value]


@dataclass
class SimulatedBms:
    """One battery's BMS: its seeded profile and what it has counted so far."""

    tables: tuple[AgeingTable, ...]
    temperature_c: float  # where the car lives and is parked
    spread: float  # this battery's ageing factor
    daily_km: float
    rng: np.random.Generator
    days: int = 0
    fec: float = 0.0
    throughput_ah: float = 0.0
    throughput_kwh: float = 0.0
    events: list[dict[str, str]] = field(default_factory=list)
    _state: tuple | None = field(default=None, repr=False)  # ((fec, days), state()) of the last call
    _fresh: float | None = field(default=None, repr=False)

    @property
    def pack_capacity_ah(self) -> float:
        return self.tables[0].capacity_ah * PACK_PARALLEL

    @property
    def pack_energy_kwh(self) -> float:
        return self.pack_capacity_ah * NOMINAL_CELL_VOLTAGE_V * PACK_SERIES / 1000

    def advance_day(self, date: str) -> None:
        """One day of driving and charging: cycles, throughput, maybe a negative event."""
        km = max(0.0, float(self.rng.normal(self.daily_km, self.daily_km / 3)))
        loss, _, _ = self.state()
        usable_kwh = self.pack_energy_kwh * (1 - loss / 100)
        cycles = km * KWH_PER_KM / usable_kwh
        self.days += 1
        self.fec += cycles
        self.throughput_ah += 2 * cycles * self.pack_capacity_ah * (1 - loss / 100)  # charge and discharge
        self.throughput_kwh += 2 * km * KWH_PER_KM
        if self.rng.random() < NEGATIVE_EVENT_CHANCE:
            what = NEGATIVE_EVENTS[int(self.rng.integers(len(NEGATIVE_EVENTS)))]
            self.events.append({"header": "negative event", "contentType": "text/plain",
                                "content": f"{date}: {what}"})

    def state(self) -> tuple[float, float, float]:
        """(capacity loss %, resistance increase %, round-trip efficiency %) now, this battery's spread applied."""
        if self._state is None or self._state[0] != (self.fec, self.days):
            loss, resistance, efficiency = interpolate(self.tables, self.temperature_c, self.fec, self.days)
            fresh = self.fresh_efficiency
            self._state = ((self.fec, self.days),
                           (loss * self.spread, resistance * self.spread, fresh - (fresh - efficiency) * self.spread))
        return self._state[1]

    @property
    def fresh_efficiency(self) -> float:
        """The round-trip efficiency of this battery when new, %."""
        if self._fresh is None:
            self._fresh = interpolate(self.tables, self.temperature_c, 0.0, 0.0)[2]
        return self._fresh

    def dynamic(self, time: str) -> dict[str, Any]:
        """The Tractus-X `performance.dynamic` document (Annex VII, Art. 14) at `time` (ISO 8601)."""
        return build_dynamic(self, time)


def build_dynamic(bms: SimulatedBms, time: str) -> dict[str, Any]:
    """Capacity, energy, power, efficiency and resistance now, with their fades, cycles and negative events."""
    loss, resistance_increase, efficiency = bms.state()
    fresh_efficiency = bms.fresh_efficiency
    soh = 100 - loss
    # Resistance-limited power at the same voltage window falls as 1/R.
    power_ratio = 1 / (1 + resistance_increase / 100)
    # Discharge energy: the capacity that is left, delivered at the discharge half of the efficiency.
    soce = soh * math.sqrt(efficiency / fresh_efficiency)
    cell_r0 = bms.tables[0].resistance_ohm
    pack_r0 = cell_r0 * PACK_SERIES / PACK_PARALLEL

    def rec(value: float, digits: int = 2) -> dict[str, Any]:
        return {"value": round(value, digits), "time": time}

    return {
        "stateOfCharge": rec(float(bms.rng.uniform(20, 90)), 1),
        "fullCycles": {"value": int(bms.fec), "time": time},
        "selfDischargingRate": round(SELF_DISCHARGE_PCT * (1 + resistance_increase / 100), 3),
        "power": {"fade": rec(100 * (1 - power_ratio)), "remaining": rec(RATED_PACK_POWER_W * power_ratio, 0)},
        "capacity": {"fade": rec(loss), "throughput": rec(bms.throughput_ah, 1),
                     "capacity": rec(bms.pack_capacity_ah * soh / 100, 2)},
        "roundTripEfficiency": {"fade": rec(fresh_efficiency - efficiency, 3), "remaining": rec(efficiency)},
        "resistance": {"increase": {"pack": rec(resistance_increase), "cell": rec(resistance_increase)},
                       "remaining": {"pack": rec(pack_r0 * (1 + resistance_increase / 100), 5),
                                     "cell": rec(cell_r0 * (1 + resistance_increase / 100), 5)}},
        "energy": {"soce": rec(soce), "remaining": rec(bms.pack_energy_kwh * soce / 100),
                   "throughput": rec(bms.throughput_kwh, 1)},
        "negativeEvents": list(bms.events),
    }


def fleet(count: int, seed: int, chemistry: str = "nmc") -> list[SimulatedBms]:
    """`count` batteries of one chemistry, each with its seeded climate, driving and ageing spread."""
    if not 1 <= count <= MAX_BATTERIES:
        raise ValueError(f"batteries: expected 1 to {MAX_BATTERIES}, got {count}")
    tables = load_tables(chemistry)
    low, high = tables[0].temperature_c, tables[-1].temperature_c
    out = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        temperature = min(high, max(low, float(rng.normal(CLIMATE_MEAN_C, CLIMATE_SIGMA_C))))
        spread = float(rng.lognormal(0.0, SPREAD_SIGMA))
        daily_km = max(5.0, float(rng.normal(DAILY_KM_MEAN, DAILY_KM_SIGMA)))
        out.append(SimulatedBms(tables, temperature, spread, daily_km, rng))
    return out
