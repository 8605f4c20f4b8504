"""Offline: simulate a cell's ageing with PyBaMM and write the table the simulated BMS runs on.

    cityledger battery ageing --chemistry nmc --temperature 25 [--out FILE] [--max-cycles N]

Once per chemistry and temperature, this cycles a cell (CC-CV charge, then a 1C discharge, again
and again) until its capacity falls to 80 % of the first cycle's, and rests another cell at 50 %
state of charge for CALENDAR_DAYS. It writes a small JSON table (offchain/passport/ageing_tables/): state
of health, DC resistance increase and round-trip energy efficiency against full equivalent cycles,
and the calendar-ageing capacity loss against days with its square-root-of-time coefficient.
The node never imports this: at run time offchain/passport/ageing.py reads the table with numpy.

PyBaMM is in the `sim` extra (pyproject.toml); this module imports it only when a simulation runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

TABLE_FORMAT = "cityledger/ageing-table/1"
ROW_EVERY_CYCLES = 25  # one table row per this many cycles (the slow test re-simulates two rows)
SAVE_AT_CYCLES = 100  # full solutions kept for these cycles only: round-trip efficiency rows
MAX_CYCLES = 8000  # cycling stops here if 80 % capacity is not reached first
END_OF_LIFE_SOH_PCT = 80  # the experiment's termination: "80% capacity"
CALENDAR_DAYS = 730  # calendar ageing: how long a cell rests
CALENDAR_STEP_DAYS = 30  # one calendar point per this many days of rest
CALENDAR_SOC = 0.5  # the resting cell's state of charge
MIN_TEMPERATURE_C = -10
MAX_TEMPERATURE_C = 60
KELVIN = 273.15
# The degradation sub-models (PyBaMM option names): SEI growth limited by solvent diffusion,
# particle swelling, and loss of active material driven by the swelling stress.
DEGRADATION_OPTIONS = {"SEI": "solvent-diffusion limited", "particle mechanics": "swelling only",
                       "loss of active material": "stress-driven"}


@dataclass(frozen=True)
class Chemistry:
    """A PyBaMM parameter set and the cycling protocol for one chemistry."""

    label: str
    parameter_set: str
    v_max: float
    v_min: float
    updates: dict[str, float] = field(default_factory=dict)
    charge_c: str = "0.3C"
    cv_cutoff: str = "C/20"
    discharge_c: str = "1C"

    def cycle(self) -> tuple[str, str, str]:
        """One CC-CV cycle, starting with the charge."""
        return (f"Charge at {self.charge_c} until {self.v_max} V", f"Hold at {self.v_max} V until {self.cv_cutoff}",
                f"Discharge at {self.discharge_c} until {self.v_min} V")


# LG M50T (NMC811 / graphite-SiOx), O'Kane et al. 2022. The two LAM terms are raised from the
# set's defaults so that 80 % is reached near 1,500 cycles at 25 °C, the order of an EV cell's rated
# cycle life; everything else is the published set.
CHEMISTRIES: dict[str, Chemistry] = {
    "nmc": Chemistry("NMC811/graphite-SiOx (LG M50T)", "OKane2022", 4.2, 2.5,
                     {"Negative electrode LAM constant proportional term [s-1]": 2.8e-6,
                      "Positive electrode LAM constant proportional term [s-1]": 2.8e-6}),
}


class AgeingError(ValueError):
    """A bad argument, naming the option."""


def check_arguments(chemistry: str, temperature_c: float) -> Chemistry:
    """The chemistry to simulate; raise AgeingError naming the option."""
    if chemistry not in CHEMISTRIES:
        raise AgeingError(f"--chemistry: expected one of {sorted(CHEMISTRIES)}, got {chemistry!r}")
    if not (math.isfinite(temperature_c) and MIN_TEMPERATURE_C <= temperature_c <= MAX_TEMPERATURE_C):
        raise AgeingError(f"--temperature: expected {MIN_TEMPERATURE_C} to {MAX_TEMPERATURE_C} °C, "
                          f"got {temperature_c}")
    return CHEMISTRIES[chemistry]


def table_name(chemistry: str, temperature_c: float) -> str:
    """The table's file name, e.g. nmc_25C.json."""
    return f"{chemistry}_{temperature_c:g}C.json"


def _parameters(chem: Chemistry, temperature_c: float) -> Any:
    import pybamm

    values = pybamm.ParameterValues(chem.parameter_set)
    values.update({**chem.updates, "Ambient temperature [K]": KELVIN + temperature_c,
                   "Initial temperature [K]": KELVIN + temperature_c})
    return values


def _simulation(chem: Chemistry, temperature_c: float, steps: list, termination: str | None) -> Any:
    import pybamm

    model = pybamm.lithium_ion.SPM(dict(DEGRADATION_OPTIONS))
    experiment = pybamm.Experiment(steps, termination=termination)
    return pybamm.Simulation(model, parameter_values=_parameters(chem, temperature_c), experiment=experiment)


def _callback(on_cycle: Callable[[int, float], None]) -> Any:
    """A PyBaMM callback reporting (cycle number, capacity in A.h) after each cycle, quietly."""
    import pybamm

    class Progress(pybamm.callbacks.Callback):
        def on_cycle_end(self, logs: dict) -> None:
            on_cycle(logs["cycle number"][0], float(logs["summary variables"]["Capacity [A.h]"]))

    return Progress()


def simulate_cycling(chemistry: str, temperature_c: float, cycles: int = MAX_CYCLES,
                     on_cycle: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Cycle to 80 % capacity (or `cycles`); rows of [FEC, SoH %, resistance increase %] and efficiency rows."""
    chem = check_arguments(chemistry, temperature_c)
    sim = _simulation(chem, temperature_c, [chem.cycle()] * cycles, f"{END_OF_LIFE_SOH_PCT}% capacity")
    callbacks = [_callback(on_cycle)] if on_cycle else []
    solution = sim.solve(save_at_cycles=SAVE_AT_CYCLES, callbacks=callbacks)
    summary = solution.summary_variables
    capacity = [float(x) for x in summary["Capacity [A.h]"]]
    throughput = [float(x) for x in summary["Throughput capacity [A.h]"]]
    resistance = [float(x) for x in summary["Local ECM resistance [Ohm]"]]
    # Reference: the first cycle's capacity and resistance (cycle 1's own loss is below 0.01 %).
    q0, r0 = capacity[0], resistance[0]
    rows = [[0.0, 100.0, 0.0]]
    for index in range(ROW_EVERY_CYCLES - 1, len(capacity), ROW_EVERY_CYCLES):
        rows.append(_row(throughput[index], capacity[index], resistance[index], q0, r0))
    if (len(capacity) - 1) % ROW_EVERY_CYCLES != ROW_EVERY_CYCLES - 1:  # the last cycle, at end of life
        rows.append(_row(throughput[-1], capacity[-1], resistance[-1], q0, r0))
    # Cycle 1 starts from the parameter set's initial state, not from empty: its charge is partial.
    efficiency = [[round(throughput[index] / (2 * q0), 3), round(100 * _cycle_efficiency(cycle), 4)]
                  for index, cycle in enumerate(solution.cycles) if cycle is not None and index > 0]
    return {"cycles": len(capacity), "capacity_ah": round(q0, 6), "resistance_ohm": round(r0, 6),
            "rows": rows, "efficiency_rows": efficiency}


def _row(throughput_ah: float, capacity_ah: float, resistance_ohm: float, q0: float, r0: float) -> list[float]:
    """[full equivalent cycles, SoH %, resistance increase %] after one cycle."""
    # Full equivalent cycles: the charge and discharge throughput over twice the initial capacity.
    return [round(throughput_ah / (2 * q0), 3), round(100 * capacity_ah / q0, 4),
            round(100 * (resistance_ohm / r0 - 1), 4)]


def _cycle_efficiency(cycle: Any) -> float:
    """Energy out over energy in for one saved cycle (charge and hold, then discharge)."""
    import numpy as np
    import pybamm

    energy_in = energy_out = 0.0
    for step in cycle.steps:
        if isinstance(step, pybamm.EmptySolution):  # a step whose end condition held at its start
            continue
        t = step["Time [s]"].entries
        power = step["Voltage [V]"].entries * step["Current [A]"].entries  # PyBaMM: discharge current > 0
        energy = float(np.sum((power[1:] + power[:-1]) * np.diff(t)) / 2)
        if energy > 0:
            energy_out += energy
        else:
            energy_in -= energy
    return energy_out / energy_in if energy_in else 0.0


def simulate_calendar(chemistry: str, temperature_c: float, days: int = CALENDAR_DAYS) -> dict[str, Any]:
    """Rest at CALENDAR_SOC: capacity loss % against days, and k in loss = k·√days (least squares)."""
    chem = check_arguments(chemistry, temperature_c)
    steps = [(f"Rest for {CALENDAR_STEP_DAYS * 24} hours",)] * (days // CALENDAR_STEP_DAYS)
    sim = _simulation(chem, temperature_c, steps, None)
    solution = sim.solve(initial_soc=CALENDAR_SOC)
    capacity = [float(x) for x in solution.summary_variables["Capacity [A.h]"]]
    q0 = float(_fresh_capacity(chem, temperature_c))
    points = [[CALENDAR_STEP_DAYS * (i + 1), round(100 * (1 - q / q0), 4)] for i, q in enumerate(capacity)]
    k = sum(loss * math.sqrt(d) for d, loss in points) / sum(d for d, _ in points)
    return {"soc": CALENDAR_SOC, "k_pct_per_sqrt_day": round(k, 6), "points": points}


def _fresh_capacity(chem: Chemistry, temperature_c: float) -> float:
    """The capacity of an unaged cell (the electrode balance at the start), in A.h."""
    sim = _simulation(chem, temperature_c, [("Rest for 1 second",)], None)
    return float(sim.solve(initial_soc=CALENDAR_SOC).summary_variables["Capacity [A.h]"][0])


def build_table(chemistry: str, temperature_c: float, on_cycle: Callable[[int, float], None] | None = None,
                cycles: int = MAX_CYCLES) -> dict[str, Any]:
    """The whole table for one chemistry and temperature: cycling rows, efficiency rows, calendar term."""
    import pybamm

    chem = check_arguments(chemistry, temperature_c)
    cycling = simulate_cycling(chemistry, temperature_c, cycles, on_cycle)
    return {
        "format": TABLE_FORMAT, "chemistry": chemistry, "cell": chem.label, "temperature_c": temperature_c,
        "source": {"pybamm": pybamm.__version__, "model": "lithium_ion.SPM", "options": DEGRADATION_OPTIONS,
                   "parameters": chem.parameter_set, "updates": chem.updates, "cycle": list(chem.cycle()),
                   "termination": f"{END_OF_LIFE_SOH_PCT}% capacity", "save_at_cycles": SAVE_AT_CYCLES,
                   "row_every_cycles": ROW_EVERY_CYCLES},
        "columns": ["full_equivalent_cycles", "soh_pct", "resistance_increase_pct"],
        **cycling,
        "calendar": simulate_calendar(chemistry, temperature_c),
    }


def write_table(table: dict[str, Any], path: Path) -> None:
    """Write a table as stable, compact JSON (one row a line, for readable diffs)."""
    lines = ["{"]
    items = list(table.items())
    for index, (key, value) in enumerate(items):
        comma = "," if index < len(items) - 1 else ""
        if key in ("rows", "efficiency_rows"):
            body = ",\n    ".join(json.dumps(row) for row in value)
            lines.append(f'  "{key}": [\n    {body}\n  ]{comma}')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)}{comma}")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")
