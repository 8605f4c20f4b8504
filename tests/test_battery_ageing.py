"""The ageing tables (PyBaMM, offline) and the simulated BMS that reads them (numpy, at run time)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from cityledger.offchain.passport.ageing import (TABLE_DIR, AgeingDataError, chemistries, fleet, interpolate,
                                                 load_tables, parse_table)
from cityledger.offchain.passport.reports import check_dynamic
from cityledger.tools.ageing import MAX_CYCLES

# The set-up the tables document (tools/ageing.py): changing it means regenerating them.
SETUP = {"model": "lithium_ion.SPM", "parameters": "OKane2022", "termination": "80% capacity", "save_at_cycles": 100,
         "options": {"SEI": "solvent-diffusion limited", "particle mechanics": "swelling only",
                     "loss of active material": "stress-driven"}}


def shipped(chemistry: str = "nmc") -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(TABLE_DIR.glob(f"{chemistry}_*C.json"))]


def test_nmc_tables_ship_at_several_temperatures_and_reach_end_of_life():
    tables = shipped()
    assert len(tables) >= 3 and "nmc" in chemistries()
    for table in tables:
        assert {k: table["source"][k] for k in SETUP} == SETUP
        assert table["source"]["updates"] == {"Negative electrode LAM constant proportional term [s-1]": 2.8e-6,
                                              "Positive electrode LAM constant proportional term [s-1]": 2.8e-6}
        rows = np.asarray(table["rows"])
        assert rows[0].tolist() == [0.0, 100.0, 0.0]
        assert np.all(np.diff(rows[:, 0]) > 0) and np.all(np.diff(rows[:, 1]) < 0)
        # Cycled until the capacity reached 80 % of the first cycle's (PyBaMM's termination), or the cap.
        assert 79.5 <= rows[-1, 1] <= 80.5 or (table["cycles"] == MAX_CYCLES and rows[-1, 1] > 80), table["cycles"]
        assert np.all(rows[1:, 2] > 0)  # resistance grows with the SEI
        assert all(80 < e < 100 for _, e in table["efficiency_rows"])
        calendar = table["calendar"]
        losses = [loss for _, loss in calendar["points"]]
        assert calendar["k_pct_per_sqrt_day"] > 0 and losses == sorted(losses)
    # Temperature matters: the tables are not copies of each other.
    assert len({table["cycles"] for table in tables}) == len(tables)


def test_interpolation_between_temperatures_and_past_the_last_row():
    tables = load_tables("nmc")
    cold, warm = tables[0], tables[-1]
    fec = float(min(cold.fec[-1], warm.fec[-1]) / 2)
    assert interpolate(tables, cold.temperature_c, 0.0, 0.0) == (0.0, 0.0, pytest.approx(cold.efficiency_pct[0]))
    assert interpolate(tables, cold.temperature_c - 20, fec, 100) == cold.at(fec, 100)
    assert interpolate(tables, warm.temperature_c + 20, fec, 100) == warm.at(fec, 100)
    middle = (tables[0].temperature_c + tables[1].temperature_c) / 2
    low, high = tables[0].at(fec, 100)[0], tables[1].at(fec, 100)[0]
    assert interpolate(tables, middle, fec, 100)[0] == pytest.approx((low + high) / 2)
    # The calendar term: k·√days on top of the cycling loss.
    assert cold.at(fec, 400)[0] - cold.at(fec, 100)[0] == pytest.approx(cold.calendar_k * (20 - 10))
    # Past the table's end of life the loss keeps growing along the last slope.
    assert cold.at(float(cold.fec[-1]) + 100, 0)[0] > cold.at(float(cold.fec[-1]), 0)[0]


def test_a_broken_table_is_refused_naming_the_field():
    good = shipped()[0]
    for changes, field in (({"format": "other/1"}, "format"), ({"rows": [[0, 100, 0]]}, "rows"),
                           ({"rows": [[0, 100, 0], [0, 99, 1]]}, "rows"), ({"efficiency_rows": []}, "efficiency_rows")):
        with pytest.raises(AgeingDataError, match=field):
            parse_table({**good, **changes})
    with pytest.raises(AgeingDataError, match="chemistry"):
        load_tables("unobtainium")


def test_bms_reports_validate_and_follow_the_table():
    batteries = fleet(12, seed=7)
    for day in range(1, 91):
        for bms in batteries:
            bms.advance_day(f"2027-01-{day % 28 + 1:02d}")
    for bms in batteries:
        dynamic = bms.dynamic("2027-06-01T00:00:00Z")
        assert check_dynamic(dynamic) == []
        loss, resistance, efficiency = interpolate(bms.tables, bms.temperature_c, bms.fec, bms.days)
        assert dynamic["capacity"]["fade"]["value"] == round(loss * bms.spread, 2)
        assert dynamic["resistance"]["increase"]["pack"]["value"] == round(resistance * bms.spread, 2)
        assert dynamic["fullCycles"]["value"] == int(bms.fec) and bms.fec > 0
        assert 0 < dynamic["energy"]["soce"]["value"] < 100 - dynamic["capacity"]["fade"]["value"] + 0.01
        assert dynamic["power"]["fade"]["value"] > 0 and dynamic["roundTripEfficiency"]["fade"]["value"] >= 0
        assert dynamic["capacity"]["throughput"]["value"] > 0 and dynamic["energy"]["throughput"]["value"] > 0
    # The spread: each battery ages at its own pace, from its own seed.
    assert len({round(bms.spread, 6) for bms in batteries}) == len(batteries)
    assert len({bms.dynamic("2027-06-01T00:00:00Z")["capacity"]["fade"]["value"] for bms in batteries}) > 1


def test_fleet_is_reproducible_from_its_seed():
    def run(seed: int) -> list:
        batteries = fleet(5, seed)
        for _ in range(30):
            for bms in batteries:
                bms.advance_day("2027-01-01")
        return [bms.dynamic("2027-01-31T00:00:00Z") for bms in batteries]

    assert run(3) == run(3) and run(3) != run(4)
    with pytest.raises(ValueError, match="batteries"):
        fleet(0, 1)


def test_bms_schema_check_names_the_bad_field():
    dynamic = fleet(1, seed=1)[0].dynamic("2027-01-01T00:00:00Z")
    dynamic["capacity"]["fade"]["value"] = "97 %"
    del dynamic["energy"]["soce"]
    dynamic["owner"] = "Alice Example"
    paths = {issue.path for issue in check_dynamic(dynamic)}
    assert {"$.dynamic.capacity.fade.value", "$.dynamic.energy.soce", "$.dynamic.owner"} <= paths


@pytest.mark.slow  # starts a Python process
def test_no_pybamm_at_run_time():
    """The node, its API and the BMS run on numpy alone."""
    code = ("import sys, cityledger.offchain.passport.ageing as a, cityledger.node.runner, cityledger.api.app, "
            "cityledger.tools.battery_sim, cityledger.cli.main; a.fleet(2, 1)[0].dynamic('2027-01-01T00:00:00Z'); "
            "sys.exit('pybamm' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.slow
def test_pybamm_re_simulates_the_shipped_table_within_a_tenth_of_a_point():
    """Fifty cycles again with the documented set-up land on the shipped 25 °C table's rows."""
    pytest.importorskip("pybamm", reason="PyBaMM (the `sim` extra) is not installed")
    from cityledger.tools.ageing import ROW_EVERY_CYCLES, simulate_cycling

    table = json.loads((TABLE_DIR / "nmc_25C.json").read_text())
    fresh = simulate_cycling("nmc", 25, cycles=2 * ROW_EVERY_CYCLES)
    assert len(fresh["rows"]) == 3
    for again, shipped_row in zip(fresh["rows"][1:], table["rows"][1:3]):
        assert math.isclose(again[0], shipped_row[0], abs_tol=0.01)  # the same full equivalent cycles
        assert abs(again[1] - shipped_row[1]) <= 0.1, (again, shipped_row)  # SoH within 0.1 percentage point
    assert abs(fresh["capacity_ah"] - table["capacity_ah"]) < 1e-3


def test_ageing_command_names_a_bad_option_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from cityledger.cli.main import app

    out = tmp_path / "table.json"
    for args, option in ((["--chemistry", "lfp", "--temperature", "25"], "--chemistry"),
                         (["--chemistry", "nmc", "--temperature", "99"], "--temperature"),
                         (["--chemistry", "nmc", "--temperature", "nan"], "--temperature")):
        result = CliRunner().invoke(app, ["battery", "ageing", *args, "--out", str(out)])
        assert result.exit_code != 0 and option in result.output, result.output
    assert not out.exists()


def test_bms_report_puts_soce_where_the_end_of_first_life_alert_reads_it():
    """The simulator's `dynamic`, as a report's, raises the alert exactly when its SOCE reaches 80 %."""
    from cityledger.offchain.passport.reports import SOCE_PATH, SOH_ALERT_PERCENT, is_end_of_first_life

    bms = fleet(1, seed=5)[0]
    assert SOCE_PATH[0] == "dynamic"
    young = {"salt": "0" * 32, "dynamic": bms.dynamic("2027-01-01T00:00:00Z")}
    assert not is_end_of_first_life(young)
    bms.fec = float(bms.tables[-1].fec[-1]) * 1.2  # past the warmest table's end of first life
    bms.days = 3 * 365
    old = {"salt": "0" * 32, "dynamic": bms.dynamic("2030-01-01T00:00:00Z")}
    value = old
    for name in SOCE_PATH:
        value = value[name]
    assert value == old["dynamic"]["energy"]["soce"]["value"] <= SOH_ALERT_PERCENT
    assert is_end_of_first_life(old)


def test_a_restricted_read_shows_a_schema_valid_report_only():
    """overlay_dynamic: a BMS report's `dynamic` replaces the document's; one that fails the schema does not."""
    from cityledger.offchain.passport.reports import overlay_dynamic

    document = {"metadata": {"passportIdentifier": "x"}, "performance": {"rated": {"r": 1}, "dynamic": {"old": 1}}}
    dynamic = fleet(1, seed=2)[0].dynamic("2027-01-01T00:00:00Z")
    shown = overlay_dynamic(document, {"salt": "0" * 32, "dynamic": dynamic})
    assert shown["performance"] == {"rated": {"r": 1}, "dynamic": dynamic}
    assert document["performance"]["dynamic"] == {"old": 1}  # the stored document is not changed
    broken = {**dynamic, "capacity": {"fade": {"value": "97 %"}}}
    assert overlay_dynamic(document, {"salt": "0" * 32, "dynamic": broken}) is document
    assert overlay_dynamic(document, {"salt": "0" * 32}) is document
    assert overlay_dynamic(document, None) is document
    assert overlay_dynamic({"metadata": {}}, {"dynamic": dynamic}) == {"metadata": {}}
