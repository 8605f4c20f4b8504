"""Trip features computed on the vehicle from its own 1 Hz samples, in integers only.

A sample is one second of the trip: speed and the road's limit in mm/s, lateral acceleration in
mm/s², and the local second of the day. From consecutive samples the vehicle counts

- harsh braking: speed falling by at least HARSH_BRAKE_MM_S2 over one 1 s step (3.1 m/s² held 1 s);
- harsh acceleration: speed rising by at least HARSH_ACCEL_MM_S2 over one step;
- harsh cornering: |lateral acceleration| at or above HARSH_CORNER_MM_S2 (0.4 g);

each run of consecutive harsh seconds counting once, and the seconds above the limit and at night.
Only the features (never the samples) leave the vehicle, and only as a hash until a claim.
"""

from __future__ import annotations

from dataclasses import dataclass

HARSH_BRAKE_MM_S2 = 3_100  # 3.1 m/s² held over 1 s
HARSH_ACCEL_MM_S2 = 2_900  # about 0.3 g
HARSH_CORNER_MM_S2 = 3_923  # 0.4 g (g = 9.80665 m/s²)
NIGHT_START_S = 22 * 3_600  # local time of day: 22:00 to 05:00 is night
NIGHT_END_S = 5 * 3_600
MAX_SPEED_MM_S = 100_000  # 360 km/h: a sample above is refused as corrupt
MAX_ACCEL_MM_S2 = 100_000
MAX_TRIP_SAMPLES = 86_400  # one day of 1 Hz samples
DAY_S = 86_400


@dataclass(frozen=True)
class Sample:
    """One second of a trip, as the vehicle's own sensors give it."""

    speed_mm_s: int
    limit_mm_s: int  # the road's speed limit where the vehicle is (0: unknown, never "over")
    lateral_mm_s2: int
    second_of_day: int  # local time


@dataclass(frozen=True)
class TripFeatures:
    """What a trip's score is computed from (the model's inputs, in FEATURES order)."""

    harsh_brakes: int
    harsh_accels: int
    harsh_corners: int
    speeding_s: int
    night_s: int
    duration_s: int
    distance_m: int

    def model_inputs(self) -> list[int]:
        """Rates per 100 km and shares of trip time in %, rounded down, and the distance in km."""
        per_100km = (lambda count: 0 if self.distance_m == 0 else count * 100_000 // self.distance_m)
        share = (lambda seconds: 0 if self.duration_s == 0 else seconds * 100 // self.duration_s)
        return [per_100km(self.harsh_brakes), per_100km(self.harsh_accels), per_100km(self.harsh_corners),
                share(self.speeding_s), share(self.night_s), self.distance_m // 1_000]


def _check(samples: list[Sample]) -> None:
    if not 0 < len(samples) <= MAX_TRIP_SAMPLES:
        raise ValueError(f"samples: expected 1 to {MAX_TRIP_SAMPLES} one-second samples, got {len(samples)}")
    for index, sample in enumerate(samples):
        for name, value, high in (("speed_mm_s", sample.speed_mm_s, MAX_SPEED_MM_S),
                                  ("limit_mm_s", sample.limit_mm_s, MAX_SPEED_MM_S),
                                  ("second_of_day", sample.second_of_day, DAY_S - 1)):
            if not isinstance(value, int) or not 0 <= value <= high:
                raise ValueError(f"samples[{index}].{name}: expected an integer 0 to {high}, got {value!r}")
        if not isinstance(sample.lateral_mm_s2, int) or abs(sample.lateral_mm_s2) > MAX_ACCEL_MM_S2:
            raise ValueError(f"samples[{index}].lateral_mm_s2: expected an integer within ±{MAX_ACCEL_MM_S2}, "
                             f"got {sample.lateral_mm_s2!r}")


def _count_runs(flags: list[bool]) -> int:
    """Runs of consecutive True values: a manoeuvre held over several seconds counts once."""
    return sum(1 for index, flag in enumerate(flags) if flag and (index == 0 or not flags[index - 1]))


def compute_features(samples: list[Sample]) -> TripFeatures:
    """A trip's features from its 1 Hz samples (pure, integers only)."""
    _check(samples)
    steps = [later.speed_mm_s - earlier.speed_mm_s for earlier, later in zip(samples, samples[1:])]
    is_night = (lambda second: second >= NIGHT_START_S or second < NIGHT_END_S)
    return TripFeatures(
        harsh_brakes=_count_runs([step <= -HARSH_BRAKE_MM_S2 for step in steps]),
        harsh_accels=_count_runs([step >= HARSH_ACCEL_MM_S2 for step in steps]),
        harsh_corners=_count_runs([abs(sample.lateral_mm_s2) >= HARSH_CORNER_MM_S2 for sample in samples]),
        speeding_s=sum(1 for sample in samples if 0 < sample.limit_mm_s < sample.speed_mm_s),
        night_s=sum(1 for sample in samples if is_night(sample.second_of_day)),
        duration_s=len(samples),
        distance_m=sum(sample.speed_mm_s for sample in samples) // 1_000,  # 1 s per sample
    )
