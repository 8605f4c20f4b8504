"""The simulated city: a SUMO road network (a generated grid unless one is given) and the fixed
origin that turns SUMO's metres into telemetry coordinates.

SUMO places a network in a plane (x east, y north, metres). The simulation maps that plane onto the
globe around CITY_ORIGIN with an equirectangular projection: latitude grows by y / EARTH_RADIUS_M
radians, longitude by x / (EARTH_RADIUS_M cos latitude0). Within a city (a few km) the error is a few
millimetres, far below the 1e-7 degree (about 1 cm) resolution of the vehicle/1 schema.
"""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

CITY_ORIGIN_LAT_E7 = 484_000_000  # 48.4 N, 10.0 E: the simulated city's (x=0, y=0), a fixed point
CITY_ORIGIN_LON_E7 = 100_000_000
EARTH_RADIUS_M = 6_371_000.0
GRID_JUNCTIONS = 8  # 8 x 8 junctions
GRID_EDGE_M = 250  # 1.75 km square
GRID_LANES = 2
GRID_SPEED_M_S = 13.89  # 50 km/h, the urban limit
# Turn speeds on the grid's junctions keep an average lateral acceleration of at most this (SUMO's
# default, 5.5 m/s², would make every driver corner above 0.4 g): a driver at the limit stays below
# the 3.923 m/s² harsh-cornering threshold, one driving 1.3 times the limit does not.
GRID_TURN_LATERAL_M_S2 = 3.0
NETGENERATE_TIMEOUT_S = 120
_DEG_E7 = 180.0 / math.pi * 1e7
_COS_ORIGIN = math.cos(math.radians(CITY_ORIGIN_LAT_E7 / 1e7))


def sumo_home() -> Path:
    """SUMO_HOME of the eclipse-sumo wheel (the `sim` extra)."""
    try:
        import sumo
    except ImportError as exc:  # the sim extra is not installed
        raise RuntimeError("the SUMO wheels are missing: install cityledger with the `sim` extra") from exc
    return Path(sumo.SUMO_HOME)


def sumo_env() -> dict[str, str]:
    """The environment SUMO's binaries and tools expect."""
    return dict(os.environ, SUMO_HOME=str(sumo_home()))


def to_lat_lon_e7(x_m: float, y_m: float) -> tuple[int, int]:
    """A point of the plane (metres from the city origin) as vehicle/1 latitude and longitude (1e-7 deg)."""
    lat = CITY_ORIGIN_LAT_E7 + round(y_m / EARTH_RADIUS_M * _DEG_E7)
    lon = CITY_ORIGIN_LON_E7 + round(x_m / (EARTH_RADIUS_M * _COS_ORIGIN) * _DEG_E7)
    return lat, lon


def from_lat_lon_e7(lat_e7: int, lon_e7: int) -> tuple[float, float]:
    """The inverse of to_lat_lon_e7: a vehicle/1 position as metres from the city origin (x east, y north)."""
    return ((lon_e7 - CITY_ORIGIN_LON_E7) / _DEG_E7 * EARTH_RADIUS_M * _COS_ORIGIN,
            (lat_e7 - CITY_ORIGIN_LAT_E7) / _DEG_E7 * EARTH_RADIUS_M)


def generate_grid(out: Path, seed: int) -> Path:
    """A city grid with traffic lights made by the wheel's netgenerate; returns the .net.xml path."""
    net = out / "grid.net.xml"
    command = [str(sumo_home() / "bin" / "netgenerate"), "--grid", f"--grid.number={GRID_JUNCTIONS}",
               f"--grid.length={GRID_EDGE_M}", f"--default.lanenumber={GRID_LANES}",
               f"--default.speed={GRID_SPEED_M_S}", "--default-junction-type=traffic_light",
               f"--junctions.limit-turn-speed={GRID_TURN_LATERAL_M_S2}",
               f"--seed={seed}", "--no-turnarounds", "-o", str(net)]
    done = subprocess.run(command, capture_output=True, text=True, env=sumo_env(), timeout=NETGENERATE_TIMEOUT_S)
    if done.returncode != 0 or not net.exists():
        raise RuntimeError(f"netgenerate failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return net


def check_net(path: Path) -> Path:
    """A user's --net file: it must exist and be a SUMO network (a <net> root)."""
    if not path.is_file():
        raise ValueError(f"--net: expected a SUMO .net.xml file, {str(path)!r} does not exist")
    with path.open("rb") as handle:
        head = handle.read(4_096)
    if b"<net" not in head:
        raise ValueError(f"--net: expected a SUMO network (a <net> element) in {str(path)!r}")
    return path
