"""Declared recycled content against Art. 8's minimums, from a passport's public tier.

The shares live in the document (`$.materials.active.<element>.recycled`, percent, Annex XIII
point 1(e)), the minimums in the one targets table (modules/batteries/targets.py, kind
recycled_content, with their article references). Off chain: a float from a document is compared
here, never in a state transition.
"""

from __future__ import annotations

from typing import Any

from ...modules.batteries.targets import KIND_RECYCLED_CONTENT, targets_of

# The targets table's element codes and the BatteryPass names of `$.materials.active`.
ELEMENT_NAMES = {"co": "cobalt", "li": "lithium", "ni": "nickel", "pb": "lead"}


def declared_share(document: dict[str, Any], element: str) -> float | None:
    """The recycled share (percent) the document declares for an element, or None."""
    active = document.get("materials", {}).get("active", {})
    value = active.get(ELEMENT_NAMES[element], {}).get("recycled") if isinstance(active, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def check_recycled_content(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Per element of Art. 8: the declared share and each minimum with whether it is met (None: not declared)."""
    out = []
    for element in sorted(ELEMENT_NAMES):
        share = declared_share(document, element)
        rows = [t for t in targets_of(KIND_RECYCLED_CONTENT) if t.material == element]
        out.append({"element": element, "declared_percent": share,
                    "targets": [{"per_mille": t.per_mille, "by": t.by, "reference": t.reference,
                                 "met": None if share is None else share * 10 >= t.per_mille} for t in rows]})
    return out
