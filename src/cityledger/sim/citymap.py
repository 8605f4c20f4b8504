"""The city's map as a vehicle or its owner's app holds it, and a trip's feature samples from its
telemetry alone.

A vehicle publishes vehicle/1 samples (position, speed) into its owner's vault; the trip features
need the speed, the posted limit where the car was and its lateral acceleration each second. Both the
vehicle (at trip end, on board) and the owner (reading its vault back) derive them with
`feature_samples` from the same vehicle/1 samples and the same public map, so the owner's scores
are exactly those the vehicle committed to:

- speed: the sample's speed (cm/s) in mm/s;
- limit: the posted limit of the lane nearest the position (`CityMap.limit_at`: within MATCH_M of a
  lane's centre line; 0, "no limit posted", inside junctions or off the map);
- lateral acceleration: the second's mean speed times the change of heading per second, the heading
  being the direction of the last second's move (kept while the car moves less than
  MIN_HEADING_MOVE_M, where a position's centimetre steps would make it noise).
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from ..offchain.mobility.features import MAX_ACCEL_MM_S2, MAX_SPEED_MM_S, Sample
from ..offchain.telemetry.format import Sample as TelemetrySample
from .city import from_lat_lon_e7

CELL_M = 25.0  # the map's lookup grid
MATCH_M = 4.0  # a position farther than this from every lane's centre line is off the map (limit 0)
MIN_HEADING_MOVE_M = 0.5
DAY_S = 86_400  # the city's local time is UTC

Segment = tuple[float, float, float, float, int]  # x1, y1, x2, y2, the lane's limit in mm/s


class CityMap:
    """Lanes' centre lines and posted limits, indexed by grid cell."""

    def __init__(self, lanes: list[tuple[list[tuple[float, float]], int]]) -> None:
        self.cells: dict[tuple[int, int], list[Segment]] = defaultdict(list)
        for shape, limit in lanes:
            for (x1, y1), (x2, y2) in zip(shape, shape[1:]):
                low_x, high_x = _cell(min(x1, x2) - MATCH_M), _cell(max(x1, x2) + MATCH_M)
                low_y, high_y = _cell(min(y1, y2) - MATCH_M), _cell(max(y1, y2) + MATCH_M)
                for cx in range(low_x, high_x + 1):
                    for cy in range(low_y, high_y + 1):
                        self.cells[(cx, cy)].append((x1, y1, x2, y2, limit))

    @classmethod
    def from_net(cls, net: Path) -> "CityMap":
        """The map of a SUMO network: junction-internal lanes post no limit (a turn speed is no legal limit)."""
        import sumolib

        network = sumolib.net.readNet(str(net), withInternal=True)
        lanes = []
        for edge in network.getEdges(withInternal=True):
            internal = edge.getFunction() == "internal"
            for lane in edge.getLanes():
                limit = 0 if internal else min(round(lane.getSpeed() * 1_000), MAX_SPEED_MM_S)
                lanes.append(([tuple(point[:2]) for point in lane.getShape()], limit))
        return cls(lanes)

    def limit_at(self, x: float, y: float) -> int:
        """The posted limit (mm/s) of the lane nearest (x, y), 0 if none is within MATCH_M."""
        best, limit = MATCH_M, 0
        for x1, y1, x2, y2, lane_limit in self.cells.get((_cell(x), _cell(y)), ()):
            distance = _distance(x, y, x1, y1, x2, y2)
            if distance <= best:
                best, limit = distance, lane_limit
        return limit


def _cell(value: float) -> int:
    return math.floor(value / CELL_M)


def _distance(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> float:
    """From (x, y) to the segment (x1, y1)-(x2, y2)."""
    dx, dy = x2 - x1, y2 - y1
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((x - x1) * dx + (y - y1) * dy) / length2))
    return math.hypot(x - x1 - t * dx, y - y1 - t * dy)


def feature_samples(telemetry: list[TelemetrySample], city: CityMap) -> list[Sample]:
    """A trip's feature samples from its vehicle/1 samples (time order) and the map."""
    out: list[Sample] = []
    heading: float | None = None
    anchor: tuple[float, float] | None = None  # where the heading was last measured from
    last_speed: int | None = None
    for sample in telemetry:
        lat, lon, speed_cm_s = sample.values
        x, y = from_lat_lon_e7(lat, lon)
        speed = min(speed_cm_s * 10, MAX_SPEED_MM_S)
        turn = 0.0
        if anchor is None:
            anchor = (x, y)
        elif math.hypot(x - anchor[0], y - anchor[1]) >= MIN_HEADING_MOVE_M:
            moved = math.atan2(x - anchor[0], y - anchor[1])  # clockwise from north, as SUMO's angle
            if heading is not None:
                turn = (moved - heading + math.pi) % (2 * math.pi) - math.pi
            heading, anchor = moved, (x, y)
        mean_speed = speed if last_speed is None else (speed + last_speed) / 2
        lateral = max(-MAX_ACCEL_MM_S2, min(MAX_ACCEL_MM_S2, round(mean_speed * turn)))
        out.append(Sample(speed, city.limit_at(x, y), lateral, sample.t_s % DAY_S))
        last_speed = speed
    return out
