"""Domain types, limits and errors of the battery passport service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NewType

Tier = Literal["public", "legitimate", "authority"]
PassportId = NewType("PassportId", str)

# Lowest first: a reader of a tier may read every tier before it (public ⊂ legitimate ⊂ authority).
TIERS: tuple[Tier, ...] = ("public", "legitimate", "authority")
RESTRICTED_TIERS: tuple[Tier, ...] = ("legitimate", "authority")

MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
MAX_DOCUMENT_DEPTH = 16
MAX_REPORTED_ISSUES = 1_000
MAX_TIER_VERSION = 2**31 - 1
MAX_LOG_PAGE = 1_000
MAX_READER_DID_CHARS = 512


def tier_rank(tier: str) -> int:
    """The position of `tier` in TIERS; raise PassportError for an unknown tier."""
    if tier not in TIERS:
        raise PassportError("tier", f"unknown tier {tier!r}, expected one of {', '.join(TIERS)}")
    return TIERS.index(tier)


@dataclass(frozen=True, order=True)
class SchemaIssue:
    """One reason a document was refused: where (a JSON path such as $.identification.idDmc) and why."""

    path: str
    message: str


@dataclass(frozen=True)
class TierVersion:
    """One stored version of one tier of a passport, with the hash the chain records for it."""

    passport_id: str
    tier: Tier
    version: int
    hash_hex: str


@dataclass(frozen=True)
class AccessEntry:
    """One read of a restricted tier, chained to the entry before it by `prev_hex`."""

    seq: int
    passport_id: str
    tier: Tier
    version: int
    reader_did: str
    height: int
    time_s: int
    prev_hex: str
    hash_hex: str


class PassportError(ValueError):
    """A request the passport service refuses; `field` names the bad input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PassportInvalid(PassportError):
    """A document that fails the schema or the stricter checks; carries every issue with its path."""

    def __init__(self, issues: list[SchemaIssue], more: int = 0) -> None:
        lines = [f"{issue.path}: {issue.message}" for issue in issues]
        if more:
            lines.append(f"... and {more} more")
        super().__init__(issues[0].path if issues else "$", "; ".join(lines))
        self.issues = issues
        self.more = more


class AccessDenied(PassportError):
    """A restricted tier asked for without a proof of the matching credential."""


class VersionError(PassportError):
    """A tier version that does not follow the latest one (versions only grow)."""


class LogBroken(PassportError):
    """An access log whose hash chain does not hold (an entry changed, dropped or reordered)."""


class NotFound(PassportError):
    """No passport, tier or version under that identifier."""
