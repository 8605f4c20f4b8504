"""The access tiers of Annex XIII of Regulation (EU) 2023/1542, field by field, and the tier split.

Each row of TIER_TABLE gives a template path, its tier, the Annex XIII point and why. A field takes
the row with the longest path that is a prefix of its own (whole segments), so a section can mix
tiers: `$.materials.composition[]` is public except the rows below it. tests/test_passport_tiers.py
checks that every leaf of the schema has a row and every row names a field of the schema.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from .schema import child_path, is_property, leaf_paths, template_of
from .types import TIERS, PassportError, Tier, tier_rank


class TierRow(NamedTuple):
    """One row of the field → tier table."""

    path: str
    tier: Tier
    point: str
    why: str


P, L, A = "public", "legitimate", "authority"
TIER_TABLE: tuple[TierRow, ...] = (
    TierRow("$.specVersion", P, "1", "version of the passport data model, needed to read anything"),
    TierRow("$.metadata", P, "1", "passport identity, issuer, dates: the passport as a public record"),
    TierRow("$.identification", P, "1(a)", "battery identification and category of Annex VI Part A"),
    TierRow("$.operation.manufacturer", P, "1(a)", "manufacturer, place and date of manufacture, Annex VI Part A"),
    TierRow("$.operation.intoServiceDate", L, "4", "the individual battery's use: put into service"),
    TierRow("$.characteristics.warranty", P, "1(m)", "period of the commercial warranty"),
    TierRow("$.characteristics.physicalDimension", P, "1(a)", "weight (Annex VI Part A); the size is model data too"),
    TierRow("$.sustainability.carbonFootprint", P, "1(c)", "carbon footprint of Art. 7"),
    TierRow("$.sustainability.documents.separateCollection", P, "1 (Art. 60)", "waste prevention and collection"),
    TierRow("$.sustainability.documents.wastePrevention", P, "1 (Art. 60)", "waste prevention and collection"),
    TierRow("$.sustainability.documents.euTaxonomyDisclosureStatement", P, "1(d)", "responsible sourcing disclosure"),
    TierRow("$.sustainability.documents.sustainabilityReport", P, "1(d)", "due diligence report of Art. 52(3)"),
    TierRow("$.sustainability.status", L, "4", "status of the individual battery (original, repurposed, ...)"),
    TierRow("$.materials.active", P, "1(b), 1(e)", "critical raw materials and recycled content of Art. 8"),
    TierRow("$.materials.active.nickel.location", L, "2(a)", "where in the battery: detailed composition"),
    TierRow("$.materials.active.lithium.location", L, "2(a)", "where in the battery: detailed composition"),
    TierRow("$.materials.active.cobalt.location", L, "2(a)", "where in the battery: detailed composition"),
    TierRow("$.materials.active.lead.location", L, "2(a)", "where in the battery: detailed composition"),
    TierRow("$.materials.active.other[].location", L, "2(a)", "where in the battery: detailed composition"),
    TierRow("$.materials.hazardous", P, "1(b)", "hazardous substances present in the battery"),
    TierRow("$.materials.hazardous.cadmium.location", L, "2(a)", "where in the battery: detailed composition"),
    TierRow("$.materials.hazardous.mercury.location", L, "2(a)", "where in the battery: detailed composition"),
    TierRow("$.materials.hazardous.lead.location", L, "2(a)", "where in the battery: detailed composition"),
    TierRow("$.materials.hazardous.other[].location", L, "2(a)", "where in the battery: detailed composition"),
    TierRow("$.materials.composition[].id", P, "1(b)", "which materials the battery is made of"),
    TierRow("$.materials.composition[].critical", P, "1(b)", "whether a material is a critical raw material"),
    TierRow("$.materials.composition[].recycled", P, "1(e)", "recycled content of Art. 8"),
    TierRow("$.materials.composition[].renewable", P, "1(f)", "share of renewable content"),
    TierRow("$.materials.composition[].concentration", L, "2(a)", "detailed composition: how much of each"),
    TierRow("$.materials.composition[].unit", L, "2(a)", "detailed composition: unit of the concentration"),
    TierRow("$.materials.composition[].location", L, "2(a)", "detailed composition: cathode, anode, electrolyte"),
    TierRow("$.materials.composition[].documentation", L, "2(a)", "detailed composition: supporting documents"),
    TierRow("$.performance.rated", P, "1(g)-(p)", "rated capacity, voltages, power, lifetime, efficiency, resistance"),
    TierRow("$.performance.rated.testReport", A, "3", "results of test reports proving compliance"),
    TierRow("$.performance.dynamic", L, "4", "the individual battery's state of health and usage, Art. 14"),
    TierRow("$.conformity.declarationOfConformityId", P, "1 (Art. 18)", "EU declaration of conformity, its identifier"),
    TierRow("$.conformity.declarationOfConformity", P, "1 (Art. 18)", "EU declaration of conformity (Art. 18)"),
    TierRow("$.conformity.dueDiligencePolicy", P, "1(d)", "responsible sourcing, Art. 52"),
    TierRow("$.conformity.thirdPartyAssurance", P, "1(d)", "third-party verification of the due diligence policy"),
    TierRow("$.conformity.resultOfTestReport", A, "3", "results of test reports proving compliance"),
    TierRow("$.safety.usableExtinguishAgent", P, "1(a)", "usable extinguishing agent, Annex VI Part A"),
    TierRow("$.safety.meaningOfLabels", P, "1 (Art. 13)", "meaning of the labels and symbols of Art. 13"),
    TierRow("$.safety.safetyMeasures", L, "2(d)", "safety measures"),
    TierRow("$.safety.safeDischarging", L, "2(c)", "dismantling information: discharge before opening"),
    TierRow("$.safety.dismantling", L, "2(c)", "dismantling information: diagrams, sequences, tools"),
    TierRow("$.safety.removalFromAppliance", L, "2(c)", "dismantling information: removal from the vehicle"),
    TierRow("$.sources", L, "2", "documents of any category, repair and dismantling guides too"),
    TierRow("$.commercial", P, "1", "placing on the market and intended use: no person, no usage"),
    TierRow("$.handling", L, "2(b)", "spare parts: part numbers and where to get them"),
)


def _is_prefix(prefix: str, path: str) -> bool:
    """Whether template `prefix` covers template `path`, by whole segments."""
    return path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "[]")


@functools.cache
def tier_row(template: str) -> TierRow | None:
    """The row that decides the tier of `template`: the longest prefix row, or None."""
    rows = [row for row in TIER_TABLE if _is_prefix(row.path, template)]
    return max(rows, key=lambda row: len(row.path)) if rows else None


@functools.cache
def tiers_under(template: str) -> tuple[Tier, ...]:
    """The tiers of every schema leaf at or below `template`, lowest first (empty if it is no field)."""
    found = {tier_row(leaf).tier for leaf in leaf_paths() if _is_prefix(template, leaf) and tier_row(leaf)}
    return tuple(tier for tier in TIERS if tier in found)


def is_withheld(template: str, tier: Tier) -> bool:
    """Whether every leaf at or below `template` sits above `tier`, so a tier-`tier` export lacks it."""
    under = tiers_under(template)
    return bool(under) and tier_rank(under[0]) > tier_rank(tier)


def split(document: Mapping[str, Any]) -> dict[Tier, dict[str, Any]]:
    """The document cut into one partial document per tier (every tier present, maybe empty)."""
    parts = _split(document, "$")
    return {tier: parts.get(tier, {}) for tier in TIERS}


def _split(value: Any, path: str) -> dict[Tier, Any]:
    """The parts of `value` at concrete `path`, by tier; arrays keep their length in every part."""
    template = template_of(path)
    under = tiers_under(template)
    if not under:
        raise PassportError(path, "not a field of BatteryPass 6.1.0")
    if len(under) == 1 or not isinstance(value, (dict, list)) or not value:
        # One tier below, a scalar, or an empty container: it goes whole to the lowest tier below.
        return {under[0]: copy.deepcopy(value)}
    if isinstance(value, dict):
        parts: dict[Tier, Any] = {}
        for key, child in value.items():
            if not is_property(template, key):
                raise PassportError(child_path(path, key), "not a field of BatteryPass 6.1.0")
            for tier, part in _split(child, child_path(path, key)).items():
                parts.setdefault(tier, {})[key] = part
        return parts
    items = [_split(item, f"{path}[{index}]") for index, item in enumerate(value)]
    tiers = [tier for tier in TIERS if any(tier in item for item in items)]
    # An item with nothing of a tier holds {} in that tier's array, so that indices line up on merge.
    return {tier: [item.get(tier, {}) for item in items] for tier in tiers}


def merge(parts: Mapping[str, Mapping[str, Any]], *, owned: bool = False) -> dict[str, Any]:
    """The document put back together from any of its tier parts (the inverse of split).

    The result shares nothing with `parts` unless `owned` (the caller gives the parts up, e.g. just
    decoded): then their values are taken as they are instead of copied.
    """
    take = (lambda value: value) if owned else copy.deepcopy
    merged: dict[str, Any] = {}
    for tier in sorted(parts, key=tier_rank):
        merged = _merge(merged, parts[tier], "$", take)
    return merged


def _merge(left: Any, right: Any, path: str, take: Any) -> Any:
    """`left` and `right` joined: objects key by key, arrays item by item; a clash of values is refused."""
    if isinstance(left, dict) and isinstance(right, dict):
        out = dict(left)
        for key, value in right.items():
            out[key] = _merge(left[key], value, child_path(path, key), take) if key in left else take(value)
        return out
    if isinstance(left, list) and isinstance(right, list) and len(left) == len(right):
        return [_merge(a, b, f"{path}[{index}]", take) for index, (a, b) in enumerate(zip(left, right))]
    raise PassportError(path, "tier parts disagree here: the same field in two tiers")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes every tier hash is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def compute_tier_hash(part: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a tier part's canonical JSON: what the chain records per tier version."""
    return hashlib.sha256(canonical_json(part)).hexdigest()


def export_tiers(tier: Tier) -> tuple[Tier, ...]:
    """The tiers a reader of `tier` gets: that tier and every one below it."""
    return TIERS[:tier_rank(tier) + 1]
