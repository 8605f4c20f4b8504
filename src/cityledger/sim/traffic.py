"""The traffic run: SUMO steps the city 1 s at a time, each vehicle reads its own state through libsumo
subscriptions, records 1 Hz telemetry samples (vehicle/1 units) and, at each arrival, closes the trip on
board (its features from those samples and the city map, sim/citymap.py) and starts the next one, so
the fleet stays the same size.

Deterministic for a seed: SUMO's own randomness (--seed), the drivers' parameters (drawn with the
seed) and the trips' origins and destinations (random.Random(seed)) all follow from it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..offchain.mobility.features import MAX_SPEED_MM_S, Sample, TripFeatures, compute_features
from ..offchain.mobility.score import SCORE_ONE, compute_score_fixed
from ..offchain.telemetry.format import Sample as TelemetrySample
from .city import check_net, generate_grid, to_lat_lon_e7
from .citymap import CityMap, feature_samples
from .drivers import CLASS_NAMES, assign_classes, write_vtypes

MAX_SIM_VEHICLES = 5_000
MAX_SIM_HOURS = 24.0
SIM_START_UNIX_S = 1_772_409_600  # 2026-03-02 00:00 UTC: the simulated day (the city's local time is UTC)
DEFAULT_START_HOUR = 7
MAX_ROUTE_TRIES = 20  # random destinations tried before a vehicle waits for its next step
MAX_TELEMETRY_SPEED_CM_S = 20_000  # vehicle/1's bound (200 km/h)


@dataclass
class Trip:
    """One finished trip, as the vehicle holds it: its samples and the features computed on board."""

    vehicle: int
    driver: str
    telemetry: list[TelemetrySample]
    samples: list[Sample]
    features: TripFeatures
    score_fixed: int  # points times SCORE_ONE


@dataclass
class ClassTotals:
    """A driver class's totals over completed trips."""

    vehicles: int = 0
    trips: int = 0
    distance_m: int = 0
    harsh_brakes: int = 0
    score_fixed_sum: int = 0

    def summary(self) -> dict:
        """km, trips, harsh brakes per 100 km, mean trip score."""
        km = self.distance_m / 1_000
        return {"vehicles": self.vehicles, "trips": self.trips, "km": round(km, 1),
                "harsh_brakes": self.harsh_brakes,
                "harsh_brakes_per_100km": round(self.harsh_brakes * 100 / km, 2) if km else 0.0,
                "mean_score": round(self.score_fixed_sum / self.trips / SCORE_ONE, 2) if self.trips else None}


@dataclass
class _OnBoard:
    """A vehicle's trip in progress: its SUMO id, samples so far, the last road edge it was on."""

    sumo_id: str
    trip: int = 0
    telemetry: list = field(default_factory=list)
    edge: str = ""


def check_args(vehicles: int, hours: float, seed: int, start_hour: int) -> None:
    """Refuse bad run parameters naming the option."""
    if not 1 <= vehicles <= MAX_SIM_VEHICLES:
        raise ValueError(f"--vehicles: expected 1 to {MAX_SIM_VEHICLES}, got {vehicles}")
    if not 0 < hours <= MAX_SIM_HOURS:
        raise ValueError(f"--hours: expected more than 0 and at most {MAX_SIM_HOURS}, got {hours}")
    if not 0 <= seed < 2**31:
        raise ValueError(f"--seed: expected 0 to {2**31 - 1}, got {seed}")
    if not 0 <= start_hour <= 23:
        raise ValueError(f"--start-hour: expected 0 to 23, got {start_hour}")


class TrafficSim:
    """A fleet driving consecutive trips on a SUMO network; `run` steps it and hands each trip to `on_trip`."""

    def __init__(self, work: Path, vehicles: int, hours: float, seed: int = 1, net: Path | None = None,
                 start_hour: int = DEFAULT_START_HOUR) -> None:
        check_args(vehicles, hours, seed, start_hour)
        self.work, self.seed, self.steps = Path(work), seed, round(hours * 3_600)
        self.start_s = start_hour * 3_600
        self.net = check_net(Path(net)) if net is not None else generate_grid(self.work, seed)
        self.city = CityMap.from_net(self.net)  # the public map vehicles and owners read limits from
        self.classes = assign_classes(vehicles)
        self.vtypes_path, self.vtypes = write_vtypes(self.work, self.classes, seed)
        self.rng = random.Random(seed)
        self.totals = {name: ClassTotals(vehicles=self.classes.count(name)) for name in CLASS_NAMES}
        self.vehicle_steps = 0
        self.wall_s = 0.0
        self.sumo_s = 0.0  # of wall_s, the time inside SUMO's step (the rest: reading, sampling, trips)

    def run(self, on_trip: Callable[[Trip], None] | None = None,
            on_step: Callable[[int], None] | None = None) -> dict:
        """Simulate `hours`; returns the summary (per driver class; partial trips at the end are dropped)."""
        import libsumo

        # what each vehicle reads of itself every step (libsumo is imported only when a run starts)
        self.vars = (libsumo.VAR_SPEED, libsumo.VAR_POSITION, libsumo.VAR_ROAD_ID)
        libsumo.start(["sumo", "-n", str(self.net), "-a", str(self.vtypes_path), "--step-length", "1",
                       "--seed", str(self.seed), "--no-step-log", "--no-warnings", "--begin", "0",
                       "--end", str(self.steps + 1), "--ignore-route-errors", "--time-to-teleport", "300"])
        started = time.perf_counter()
        try:
            self.edges = _passenger_edges(libsumo)
            if len(self.edges) < 2:
                raise ValueError(f"--net: expected a network with at least 2 edges open to cars, "
                                 f"found {len(self.edges)}")
            fleet = [_OnBoard(sumo_id="") for _ in self.classes]
            for index in range(len(fleet)):
                self._start_trip(libsumo, fleet, index, self.rng.choice(self.edges))
            by_id = {board.sumo_id: index for index, board in enumerate(fleet)}
            for step in range(self.steps):
                stepped = time.perf_counter()
                libsumo.simulation.step()
                self.sumo_s += time.perf_counter() - stepped
                self._depart(libsumo)
                self._sample(libsumo, fleet, by_id, step)
                self._arrive(libsumo, fleet, by_id, on_trip)
                if on_step is not None:
                    on_step(step + 1)
        finally:
            libsumo.close()
            self.wall_s = time.perf_counter() - started
        return self.summary()

    def _start_trip(self, libsumo, fleet: list[_OnBoard], index: int, origin: str) -> None:
        """Vehicle `index`'s next trip from `origin` to a random reachable edge."""
        board, vtype = fleet[index], self.vtypes[index]
        for _ in range(MAX_ROUTE_TRIES):
            target = self.rng.choice(self.edges)
            if target == origin:
                continue
            route = libsumo.simulation.findRoute(origin, target, vType=vtype).edges
            if route:
                break
            origin = self.rng.choice(self.edges)  # a dead end: start from elsewhere
        else:
            raise RuntimeError(f"no route found for vehicle {index} in {MAX_ROUTE_TRIES} tries: is the network "
                               f"connected?")
        board.trip += 1
        board.sumo_id = f"{self.classes[index]}-{index:05d}.{board.trip}"
        libsumo.route.add(f"r.{board.sumo_id}", list(route))
        libsumo.vehicle.add(board.sumo_id, f"r.{board.sumo_id}", typeID=vtype, depart="now",
                            departLane="best", departSpeed="0")
        board.telemetry, board.edge = [], origin

    def _depart(self, libsumo) -> None:
        for sumo_id in libsumo.simulation.getDepartedIDList():
            libsumo.vehicle.subscribe(sumo_id, self.vars)

    def _sample(self, libsumo, fleet: list[_OnBoard], by_id: dict[str, int], step: int) -> None:
        """One second of every driving vehicle, in the integers of the vehicle's telemetry (vehicle/1)."""
        t_s = SIM_START_UNIX_S + self.start_s + step
        speed_v, pos_v, road_v = self.vars
        results = libsumo.vehicle.getAllSubscriptionResults()
        self.vehicle_steps += len(results)
        for sumo_id, values in results.items():
            if values[pos_v][0] == libsumo.INVALID_DOUBLE_VALUE:
                continue  # off the network this second (SUMO teleports a vehicle stuck in a jam): no sample
            board = fleet[by_id[sumo_id]]
            speed_mm_s = min(round(max(values[speed_v], 0.0) * 1_000), MAX_SPEED_MM_S)
            lat, lon = to_lat_lon_e7(*values[pos_v])
            board.telemetry.append(TelemetrySample(t_s, (lat, lon, min(speed_mm_s // 10, MAX_TELEMETRY_SPEED_CM_S))))
            if not values[road_v].startswith(":"):
                board.edge = values[road_v]

    def _arrive(self, libsumo, fleet: list[_OnBoard], by_id: dict[str, int], on_trip) -> None:
        """Close each arrived vehicle's trip on board, then send it on its next trip from where it stopped."""
        for sumo_id in libsumo.simulation.getArrivedIDList():
            index = by_id.pop(sumo_id)
            board = fleet[index]
            if board.telemetry:
                self._close(index, board, on_trip)
            self._start_trip(libsumo, fleet, index, board.edge)
            by_id[board.sumo_id] = index

    def _close(self, index: int, board: _OnBoard, on_trip) -> None:
        samples = feature_samples(board.telemetry, self.city)
        features = compute_features(samples)
        score, _ = compute_score_fixed(features.model_inputs())
        totals = self.totals[self.classes[index]]
        totals.trips += 1
        totals.distance_m += features.distance_m
        totals.harsh_brakes += features.harsh_brakes
        totals.score_fixed_sum += score
        if on_trip is not None:
            on_trip(Trip(index, self.classes[index], board.telemetry, samples, features, score))

    def summary(self) -> dict:
        """The run's figures, per driver class."""
        return {"vehicles": len(self.classes), "hours": self.steps / 3_600, "seed": self.seed,
                "net": self.net.name, "vehicle_steps": self.vehicle_steps, "wall_s": round(self.wall_s, 2),
                "vehicle_steps_per_s": round(self.vehicle_steps / self.wall_s) if self.wall_s else 0,
                "sumo_share": round(self.sumo_s / self.wall_s, 3) if self.wall_s else 0.0,
                "classes": {name: totals.summary() for name, totals in self.totals.items()}}


def _passenger_edges(libsumo) -> list[str]:
    """Edges (not junction-internal) with a lane open to passenger cars, sorted (a stable choice order)."""
    out = []
    for edge in libsumo.edge.getIDList():
        if edge.startswith(":"):
            continue
        lanes = [f"{edge}_{lane}" for lane in range(libsumo.edge.getLaneNumber(edge))]
        if any(_allows_cars(libsumo, lane) for lane in lanes):
            out.append(edge)
    return sorted(out)


def _allows_cars(libsumo, lane: str) -> bool:
    allowed, disallowed = libsumo.lane.getAllowed(lane), libsumo.lane.getDisallowed(lane)
    return "passenger" not in disallowed and (not allowed or "passenger" in allowed)


def run_traffic(vehicles: int, hours: float, seed: int = 1, net: Path | None = None, work: Path | None = None,
                on_trip: Callable[[Trip], None] | None = None, on_step: Callable[[int], None] | None = None,
                start_hour: int = DEFAULT_START_HOUR) -> dict:
    """Build the city and the fleet in `work` (a temporary folder if None), run, return the summary."""
    import tempfile

    if work is not None:
        return TrafficSim(work, vehicles, hours, seed, net, start_hour).run(on_trip, on_step)
    with tempfile.TemporaryDirectory(prefix="cityledger-sim-") as tmp:
        return TrafficSim(Path(tmp), vehicles, hours, seed, net, start_hour).run(on_trip, on_step)
