"""The feature samples a vehicle and its owner derive from vehicle/1 telemetry and the city map: the limit of
the nearest lane, 0 inside junctions and off the map; lateral acceleration from the heading's change."""

from __future__ import annotations

import math

from cityledger.offchain.mobility.features import compute_features
from cityledger.offchain.telemetry.format import Sample as TelemetrySample
from cityledger.sim.city import from_lat_lon_e7, to_lat_lon_e7
from cityledger.sim.citymap import MATCH_M, CityMap, feature_samples

T0 = 1_772_409_600 + 8 * 3_600  # 08:00 local


def _city() -> CityMap:
    # a road north along x = 0 (50 km/h), a junction's internal lane at its end, a 30 km/h road east from it
    return CityMap([([(0.0, 0.0), (0.0, 200.0)], 13_890), ([(0.0, 200.0), (10.0, 210.0)], 0),
                    ([(10.0, 210.0), (300.0, 210.0)], 8_330)])


def _telemetry(points: list[tuple[float, float]], speed_cm_s: int) -> list[TelemetrySample]:
    return [TelemetrySample(T0 + i, (*to_lat_lon_e7(x, y), speed_cm_s)) for i, (x, y) in enumerate(points)]


def test_the_map_gives_the_nearest_lanes_limit_and_none_off_the_map():
    city = _city()
    assert city.limit_at(1.0, 50.0) == 13_890
    assert city.limit_at(100.0, 209.0) == 8_330
    assert city.limit_at(5.5, 205.0) == 0  # inside the junction: no limit posted
    assert city.limit_at(MATCH_M + 0.5, 50.0) == 0  # off the map
    assert city.limit_at(-5_000.0, -5_000.0) == 0


def test_positions_round_trip_through_vehicle_1_units_to_the_centimetre():
    for x, y in ((0.0, 0.0), (1_234.56, -987.65), (-3_000.0, 2_500.25)):
        back = from_lat_lon_e7(*to_lat_lon_e7(x, y))
        assert abs(back[0] - x) < 0.01 and abs(back[1] - y) < 0.02


def test_a_straight_drive_has_no_lateral_acceleration_and_a_turn_has_speed_times_turn_rate():
    city = _city()
    straight = feature_samples(_telemetry([(0.0, 10.0 * i) for i in range(10)], 1_000), city)
    assert [s.lateral_mm_s2 for s in straight] == [0] * 10
    assert {s.limit_mm_s for s in straight} == {13_890} and straight[0].speed_mm_s == 10_000
    assert straight[0].second_of_day == 8 * 3_600
    # north at 10 m/s, then east: the heading turns by 90 degrees within one second
    turn = feature_samples(_telemetry([(0.0, 0.0), (0.0, 10.0), (10.0, 10.0), (20.0, 10.0)], 1_000), city)
    assert [s.lateral_mm_s2 for s in turn] == [0, 0, round(10_000 * math.pi / 2), 0]
    left = feature_samples(_telemetry([(0.0, 0.0), (0.0, 10.0), (-10.0, 10.0)], 1_000), city)
    assert left[2].lateral_mm_s2 == -round(10_000 * math.pi / 2)


def test_a_car_standing_still_keeps_its_heading_and_the_features_follow_from_telemetry_alone():
    city = _city()
    points = [(0.0, 0.0), (0.0, 10.0), (0.0, 10.001), (0.001, 10.002), (0.0, 20.0)]
    samples = feature_samples(_telemetry(points, 1_000), city)
    assert [s.lateral_mm_s2 for s in samples] == [0] * 5  # centimetre jitter while stopped is no cornering
    fast = _telemetry([(0.0, 15.0 * i) for i in range(10)], 1_500)  # 54 km/h on a 50 road
    features = compute_features(feature_samples(fast, city))
    assert features.speeding_s == 10 and features.harsh_corners == 0
    assert compute_features(feature_samples(fast, city)) == features  # the owner's copy gives the same
