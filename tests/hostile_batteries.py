"""Hostile baselines for the batteries module (this module holds no tests).

`BatteryTargets` sets up, in a HostileWorld's city, one passport at each stage a message needs, so
every batteries message reaches its deepest checks. Each baseline is refused by design at its last
check or earlier (its hostile copies must all be rejected, and a recycling record whose mass is 0
is a valid one), so the targets keep their stages however many copies are sent.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable

from cityledger.core.hashing import sha256
from cityledger.core.keys import PrivateKey
from cityledger.modules.batteries import (
    ROLE_MANUFACTURER,
    ROLE_PASSPORT_SERVICE,
    ROLE_RECYCLER,
    ROLE_REMANUFACTURER,
    ROLE_REPAIRER,
    ROLE_SECOND_LIFE,
    ROLE_VEHICLE_MAKER,
    ZERO_HEAD,
    AnchorAccessLog,
    AnchorLogRoot,
    AnchorReportRoot,
    Collect,
    Install,
    Materials,
    PlaceOnMarket,
    Recycle,
    RegisterPassport,
    Remanufacture,
    Repair,
    ReportHealth,
    Repurpose,
    UpdateDocument,
    compute_report_payload,
    get_passport,
)
from cityledger.modules.devices import compute_device_did
from cityledger.offchain.identity.devices import build_registration, sign_device_message

HASH = b"\x11" * 32


def hostile_passport_id(seed: int) -> str:
    return str(uuid.UUID(bytes=sha256(b"hostile-passport" + bytes([seed]))[:16], version=4))


class BatteryTargets:
    """A manufacturer accredited for every battery role, and passports at manufactured, placed on the
    market and in service."""

    def __init__(self, city, maker) -> None:
        self.city, self.ledger, self.maker = city, city.ledger, maker
        self.key = maker.keys[0]
        for role in (ROLE_MANUFACTURER, ROLE_VEHICLE_MAKER, ROLE_REPAIRER, ROLE_SECOND_LIFE, ROLE_REMANUFACTURER,
                     ROLE_RECYCLER, ROLE_PASSPORT_SERVICE):
            assert city.accredit(maker.did, role) == "executed"
        self.spare = self._device(0x91, "battery")  # a battery without a passport
        self.vehicle = self._device(0x92, "vehicle")
        self.manufactured = self._passport(0x93)
        self.on_market = self._passport(0x94)
        self._send(PlaceOnMarket(maker.did, self.on_market))
        self.in_service = self._passport(0x95)
        self._send(PlaceOnMarket(maker.did, self.in_service))
        self._send(Install(maker.did, self.in_service, self.vehicle))
        self._send(AnchorAccessLog(maker.did, self.manufactured, HASH, 1, ZERO_HEAD))
        self._send(AnchorLogRoot(maker.did, 1, HASH, 1))
        self._send(AnchorReportRoot(maker.did, 1, HASH, 1))

    def _send(self, message) -> None:
        self.ledger.send([self.key], [message]).raise_for_error()

    def _device(self, seed: int, kind: str) -> str:
        device = PrivateKey(2, bytes([seed]) * 32)
        self._send(build_registration(self.city.chain_id, kind, "Cell-1", device, self.maker.did, self.key))
        return compute_device_did(device.public_key)

    def _passport(self, seed: int) -> str:
        pid = hostile_passport_id(seed)
        self._send(RegisterPassport(self.maker.did, pid, f"HOSTILE-{seed}", self._device(seed, "battery"), HASH, HASH,
                                    HASH))
        return pid

    def report(self) -> ReportHealth:
        """A correctly signed next report of the passport in service."""
        record = get_passport(self.ledger.store, self.in_service)
        sequence = record.report_count + 1
        payload = compute_report_payload(self.city.chain_id, self.in_service, sequence, HASH)
        signature = sign_device_message(PrivateKey(2, bytes([0x95]) * 32), record.battery, payload)
        return ReportHealth(self.in_service, sequence, HASH, signature)

    def baselines(self) -> dict[str, Callable[[], tuple[PrivateKey, Any]]]:
        """Message tag -> (signing key, message) for every batteries message."""
        did, key, masses = self.maker.did, self.key, Materials(900, 2_000, 600, 3_000, 10)
        new = hostile_passport_id(0x96)
        return {
            "batteries/1.0/register": lambda: (key, RegisterPassport(did, new, "HOSTILE-new", self.spare, HASH, HASH,
                                                                     HASH)),
            "batteries/1.0/place_on_market": lambda: (key, PlaceOnMarket(did, self.manufactured)),
            "batteries/1.0/install": lambda: (key, Install(did, self.on_market, self.vehicle)),
            "batteries/1.0/report": lambda: (key, self.report()),
            "batteries/1.0/repair": lambda: (key, Repair(did, self.in_service)),
            "batteries/1.0/repurpose": lambda: (key, Repurpose(did, self.in_service, new, "HOSTILE-r", HASH, HASH,
                                                               HASH)),
            "batteries/1.0/remanufacture": lambda: (key, Remanufacture(did, self.in_service, new, "HOSTILE-r", HASH,
                                                                       HASH, HASH)),
            "batteries/1.0/collect": lambda: (key, Collect(did, self.on_market)),
            # In service, not collected: refused at the very last check, after every field's.
            "batteries/1.0/recycle": lambda: (key, Recycle(did, "BATCH-1", [self.in_service], 40_000, 29_000,
                                                           masses, masses)),
            "batteries/1.0/update_document": lambda: (key, UpdateDocument(did, self.manufactured, "public", 2, HASH)),
            # Follows the anchored head, but the count does not grow: refused at the last check.
            "batteries/1.0/anchor_access_log": lambda: (key, AnchorAccessLog(did, self.manufactured, HASH, 1, HASH)),
            # The service's root 1 again: refused at the last check (the sequence).
            "batteries/1.0/anchor_log_root": lambda: (key, AnchorLogRoot(did, 1, HASH, 1)),
            "batteries/1.0/anchor_report_root": lambda: (key, AnchorReportRoot(did, 1, HASH, 1)),
        }
