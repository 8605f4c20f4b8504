"""Credential types the city issues, and the date arithmetic of their predicates.

Dates are YYYYMMDD integers, so "born at least 18 years before `today`" is the predicate
birth_date <= today - 18_0000 (the year digits move, month and day stay), which AnonCreds proves
without revealing the birth date.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

RESIDENT_ID = "resident-id"
VEHICLE_REGISTRATION = "vehicle-registration"
DEVICE_MANUFACTURER = "device-manufacturer"
# Readers of the restricted tiers of a battery passport (Annex XIII points 2-4; offchain/passport/access.py).
BATTERY_LEGITIMATE_INTEREST = "battery-legitimate-interest"
BATTERY_AUTHORITY = "battery-authority"


@dataclass(frozen=True)
class CredentialType:
    """A kind of credential: its schema (name is the credential type) and revocation policy."""

    name: str
    version: str
    attributes: tuple[str, ...]  # sorted
    revocable: bool = True
    # Credentials per revocation registry. The library default is small (simulations, tests); a
    # hosted office takes its size from issuer.toml, CITY_REGISTRY_SIZE unless it says otherwise.
    max_cred_num: int = 1024


# One registry per credential type holds the whole city (90,000 residents), so a presentation,
# which names its registry, hides its holder among everyone holding the type: the ledger's largest
# registry (modules/identity MAX_CRED_NUM). Measured costs: docs/IDENTITY_PROTOCOL.md.
CITY_REGISTRY_SIZE = 1 << 17
# The smallest registry an office may configure (AnonCreds index 0 is unusable: capacity is size - 1).
MIN_REGISTRY_SIZE = 4


RESIDENT_ID_TYPE = CredentialType(RESIDENT_ID, "1.0",
                                  ("birth_date", "district", "id_number", "name", "resident_since"))
VEHICLE_REGISTRATION_TYPE = CredentialType(VEHICLE_REGISTRATION, "1.0",
                                           ("device_did", "owner_account", "registered_on"))
# holder_did: the organisation the credential names, revealed and written to the passport access log.
BATTERY_LEGITIMATE_INTEREST_TYPE = CredentialType(BATTERY_LEGITIMATE_INTEREST, "1.0", ("holder_did", "role"))
BATTERY_AUTHORITY_TYPE = CredentialType(BATTERY_AUTHORITY, "1.0", ("holder_did", "role"))
KNOWN_TYPES = {t.name: t for t in (RESIDENT_ID_TYPE, VEHICLE_REGISTRATION_TYPE, BATTERY_LEGITIMATE_INTEREST_TYPE,
                                   BATTERY_AUTHORITY_TYPE)}


def compute_yyyymmdd(day: _dt.date) -> int:
    """A date as a YYYYMMDD integer."""
    return day.year * 10_000 + day.month * 100 + day.day


def compute_years_before(today: int, years: int) -> int:
    """The YYYYMMDD date `years` years before `today` (a threshold for '<=' predicates)."""
    return today - years * 10_000


def compute_today(time_ns: int) -> int:
    """The UTC date of a block time as YYYYMMDD."""
    return compute_yyyymmdd(_dt.datetime.fromtimestamp(time_ns // 1_000_000_000, _dt.timezone.utc).date())
