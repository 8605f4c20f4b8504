"""Driver behaviour: cautious, normal and aggressive drivers, each vehicle's parameters drawn from its
class's distributions by SUMO's createVehTypeDistribution.py (Krauss car following).

One vType per vehicle: a class's distribution is sampled as many times as the class has vehicles,
so no two vehicles share a driver. Measured with fixed vTypes, classes do not give graded harsh
braking; per-vehicle deceleration drawn from N(2.4, 0.3), N(2.9, 0.4), N(4.0, 0.8) m/s² does.
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from .city import sumo_env, sumo_home

VTYPES_TIMEOUT_S = 120


@dataclass(frozen=True)
class DriverClass:
    """A class of drivers: per parameter, createVehTypeDistribution's `distribution; [low, high]`."""

    name: str
    decel: str  # m/s² the driver is willing to brake at
    accel: str  # m/s²
    sigma: str  # Krauss driver imperfection 0..1 (random dawdling)
    tau: str  # s, desired time headway
    speed_factor: str  # multiplies the lane's limit: above 1 the driver speeds

    def config(self) -> str:
        """The script's config file: one `attribute; value [; bounds]` per line."""
        return "\n".join(["vClass; passenger", "carFollowModel; Krauss", f"decel; {self.decel}",
                          f"accel; {self.accel}", f"sigma; {self.sigma}", f"tau; {self.tau}",
                          f"speedFactor; {self.speed_factor}", "speedDev; 0"]) + "\n"


DRIVER_CLASSES = (
    DriverClass("cautious", "normal(2.4,0.3); [1.2,4.5]", "normal(1.8,0.3); [0.8,3.5]",
                "normal(0.2,0.05); [0,1]", "normal(1.6,0.2); [1,3]", "normal(0.92,0.04); [0.7,1.1]"),
    DriverClass("normal", "normal(2.9,0.4); [1.2,5.5]", "normal(2.6,0.4); [1,4.5]",
                "normal(0.5,0.1); [0,1]", "normal(1.1,0.2); [0.6,2.5]", "normal(1.0,0.06); [0.8,1.25]"),
    DriverClass("aggressive", "normal(4.0,0.8); [1.5,8]", "normal(3.4,0.6); [1.5,6]",
                "normal(0.7,0.1); [0,1]", "normal(0.7,0.15); [0.4,1.5]", "normal(1.15,0.08); [0.9,1.45]"),
)
CLASS_NAMES = tuple(driver.name for driver in DRIVER_CLASSES)


def assign_classes(vehicles: int) -> list[str]:
    """Vehicle i's driver class: the classes in turn, so each holds a third of the fleet."""
    return [CLASS_NAMES[index % len(CLASS_NAMES)] for index in range(vehicles)]


def write_vtypes(out: Path, classes: list[str], seed: int) -> tuple[Path, list[str]]:
    """(the additional file of vTypes, vehicle i's own vType id), drawn deterministically from `seed`."""
    path = out / "vtypes.add.xml"
    path.unlink(missing_ok=True)
    script = sumo_home() / "tools" / "createVehTypeDistribution.py"
    for offset, driver in enumerate(DRIVER_CLASSES):
        count = classes.count(driver.name)
        if count == 0:
            continue
        config = out / f"{driver.name}.cfg.txt"
        config.write_text(driver.config())
        # the script inserts each distribution into the file when it already exists
        done = subprocess.run([sys.executable, str(script), str(config), "-o", str(path), "-n", driver.name,
                               "-s", str(count), "--seed", str(seed * 10 + offset)], capture_output=True,
                              text=True, env=sumo_env(), timeout=VTYPES_TIMEOUT_S)
        if done.returncode != 0:
            raise RuntimeError(f"createVehTypeDistribution.py failed for {driver.name}: {done.stderr[-500:]}")
    return path, _vtype_per_vehicle(path, classes)


def _vtype_per_vehicle(path: Path, classes: list[str]) -> list[str]:
    """The k-th vehicle of a class drives the class's k-th vType."""
    members = {name: [] for name in CLASS_NAMES}
    for distribution in ElementTree.parse(path).getroot().iter("vTypeDistribution"):
        members[distribution.get("id")] = [vtype.get("id") for vtype in distribution.iter("vType")]
    taken = {name: 0 for name in CLASS_NAMES}
    out = []
    for name in classes:
        out.append(members[name][taken[name]])
        taken[name] += 1
    return out
