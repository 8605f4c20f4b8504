"""Simulated traffic (sim/): the city projection, the drivers' distributions, and SUMO runs whose
driver classes are graded (cautious < normal < aggressive in harsh braking; aggressive scores lower)."""

from __future__ import annotations

import json
import shutil
import statistics
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

pytest.importorskip("libsumo")

from cityledger.offchain.telemetry.format import SCHEMAS  # noqa: E402
from cityledger.sim.city import CITY_ORIGIN_LAT_E7, CITY_ORIGIN_LON_E7, to_lat_lon_e7  # noqa: E402
from cityledger.sim.drivers import assign_classes, write_vtypes  # noqa: E402
from cityledger.sim.traffic import MAX_SIM_VEHICLES, TrafficSim, check_args, run_traffic  # noqa: E402


def test_projection_maps_metres_around_the_city_origin():
    assert to_lat_lon_e7(0.0, 0.0) == (CITY_ORIGIN_LAT_E7, CITY_ORIGIN_LON_E7)
    lat, lon = to_lat_lon_e7(0.0, 1_000.0)  # 1 km north: 1/111.195 degree
    assert lon == CITY_ORIGIN_LON_E7 and abs(lat - CITY_ORIGIN_LAT_E7 - 89_932) <= 1
    lat, lon = to_lat_lon_e7(1_000.0, 0.0)  # 1 km east is more degrees of longitude at 48.4 N
    assert lat == CITY_ORIGIN_LAT_E7 and 134_000 < lon - CITY_ORIGIN_LON_E7 < 136_000


@pytest.mark.parametrize("args, field", [((0, 1.0, 1, 7), "--vehicles"),
                                         ((MAX_SIM_VEHICLES + 1, 1.0, 1, 7), "--vehicles"),
                                         ((10, 0.0, 1, 7), "--hours"), ((10, 25.0, 1, 7), "--hours"),
                                         ((10, 1.0, -1, 7), "--seed"), ((10, 1.0, 1, 24), "--start-hour")])
def test_bad_run_parameters_are_refused_naming_the_option(args, field):
    with pytest.raises(ValueError, match=field):
        check_args(*args)


def test_each_vehicle_gets_its_own_driver_drawn_from_its_class(tmp_path):
    classes = assign_classes(90)
    path, vtypes = write_vtypes(tmp_path, classes, seed=5)
    assert len(set(vtypes)) == 90 and all(vtype.startswith(name) for vtype, name in zip(vtypes, classes))
    decel = {}
    for distribution in ElementTree.parse(path).getroot().iter("vTypeDistribution"):
        members = list(distribution.iter("vType"))
        assert {member.get("carFollowModel") for member in members} == {"Krauss"}
        decel[distribution.get("id")] = [float(member.get("decel")) for member in members]
    means = {name: statistics.mean(values) for name, values in decel.items()}
    assert abs(means["cautious"] - 2.4) < 0.2 and abs(means["normal"] - 2.9) < 0.25
    assert abs(means["aggressive"] - 4.0) < 0.45
    assert statistics.stdev(decel["cautious"]) < statistics.stdev(decel["aggressive"])
    # the same seed draws the same drivers
    again = tmp_path / "again"
    again.mkdir()
    assert ElementTree.tostring(ElementTree.parse(write_vtypes(again, classes, seed=5)[0]).getroot()) == \
        ElementTree.tostring(ElementTree.parse(path).getroot())


@pytest.mark.slow
def test_driver_classes_are_graded_and_trips_carry_telemetry_units(tmp_path):
    trips = []
    summary = run_traffic(45, 0.5, seed=11, work=tmp_path, on_trip=trips.append)
    classes = summary["classes"]
    rate = {name: row["harsh_brakes_per_100km"] for name, row in classes.items()}
    assert rate["cautious"] < rate["normal"] < rate["aggressive"], rate
    assert classes["aggressive"]["mean_score"] < classes["normal"]["mean_score"] < classes["cautious"]["mean_score"]
    assert all(row["trips"] >= 20 for row in classes.values())
    assert sum(row["trips"] for row in classes.values()) == len(trips)
    # the fleet stays the same size: every second, every vehicle is on the road or waiting to enter it
    assert summary["vehicle_steps"] > 0.9 * 45 * 1_800
    bounds = SCHEMAS["vehicle/1"].bounds
    for trip in trips:
        assert len(trip.telemetry) == len(trip.samples) == trip.features.duration_s
        assert [sample.t_s for sample in trip.telemetry] == list(range(trip.telemetry[0].t_s,
                                                                        trip.telemetry[0].t_s + len(trip.telemetry)))
        for sample in trip.telemetry:
            assert all(low <= value <= high for value, (low, high) in zip(sample.values, bounds))
            assert sample.values[2] * 10 <= 100_000
    # coordinates stay inside the simulated city: the 1.75 km grid north and east of the origin (its
    # junctions reach a few tens of metres past it; 1 m north is about 90e-7 degrees)
    lats = [sample.values[0] - CITY_ORIGIN_LAT_E7 for trip in trips for sample in trip.telemetry]
    assert -100 * 90 < min(lats) and max(lats) < 1_850 * 90 and max(lats) - min(lats) > 1_000 * 90


@pytest.mark.slow
def test_a_seed_replays_the_same_traffic_and_a_net_file_is_accepted(tmp_path):
    from typer.testing import CliRunner

    from cityledger.cli.main import app

    first = tmp_path / "first"
    first.mkdir()
    sim = TrafficSim(first, 9, 0.1, seed=4)
    one = sim.run()
    net = tmp_path / "city.net.xml"
    shutil.copy(sim.net, net)
    result = CliRunner().invoke(app, ["sim", "traffic", "--vehicles", "9", "--hours", "0.1", "--seed", "4",
                                      "--net", str(net), "--json"])
    assert result.exit_code == 0, result.output
    two = json.loads(result.stdout)
    assert two["net"] == "city.net.xml"
    assert two["classes"] == one["classes"] and two["vehicle_steps"] == one["vehicle_steps"]
    other = run_traffic(9, 0.1, seed=5, net=net, work=tmp_path)
    assert other["classes"] != one["classes"]


def test_a_file_that_is_no_network_is_refused(tmp_path):
    bogus = tmp_path / "city.net.xml"
    bogus.write_text("<routes/>")
    with pytest.raises(ValueError, match="--net: expected a SUMO network"):
        TrafficSim(tmp_path, 3, 0.1, net=bogus)
    assert not (tmp_path / "vtypes.add.xml").exists()
    with pytest.raises(ValueError, match="--net"):
        TrafficSim(tmp_path, 3, 0.1, net=Path(tmp_path / "missing.net.xml"))


@pytest.mark.slow
def test_bench_rewards_measures_the_traffic_run():
    from cityledger.tools.bench_rewards import bench_sim

    result = bench_sim(6, 60)
    assert result["sim_vehicles"] == 6 and 0 < result["sim_vehicle_steps"] <= 6 * 60
    assert result["sim_vehicle_steps_per_s"] > 0 and 0 < result["sim_sumo_share"] < 1


@pytest.mark.parametrize("args, message", [(["--sponsor", "s"], "only with --node"),
                                           (["--node", "http://127.0.0.1:9", "--office", "o"], "both are needed"),
                                           (["--vehicles", "0"], "--vehicles"),
                                           (["--net", "/nonexistent/city.net.xml"], "--net")])
def test_cli_options_are_refused_naming_them(args, message):
    from typer.testing import CliRunner

    from cityledger.cli.main import app

    result = CliRunner().invoke(app, ["sim", "traffic", *args])
    assert result.exit_code == 1 and message in result.output, result.output


def test_a_vehicle_off_the_network_gives_no_sample():
    """SUMO reports INVALID_DOUBLE_VALUE positions for a vehicle it teleports out of a jam (seen with
    200 vehicles): that second gives no sample, rather than a coordinate far outside vehicle/1's bounds."""
    import types

    from cityledger.sim.traffic import TrafficSim, _OnBoard

    invalid = -1073741824.0
    fake = types.SimpleNamespace(INVALID_DOUBLE_VALUE=invalid)
    readings = {"a": {0: 12.0, 1: (invalid, invalid), 2: "e0"}, "b": {0: 10.0, 1: (100.0, 200.0), 2: "e0"}}
    fake.vehicle = types.SimpleNamespace(getAllSubscriptionResults=lambda: readings)
    sim = types.SimpleNamespace(vars=(0, 1, 2), start_s=0, vehicle_steps=0)
    fleet = [_OnBoard("a"), _OnBoard("b")]
    TrafficSim._sample(sim, fake, fleet, {"a": 0, "b": 1}, 5)
    assert fleet[0].telemetry == []
    (sample,) = fleet[1].telemetry
    low, high = SCHEMAS["vehicle/1"].bounds[0]
    assert low <= sample.values[0] <= high and sample.values[1:] == (to_lat_lon_e7(100.0, 200.0)[1], 1_000)
