"""The EU Regulation 2023/1542 figures the city's battery-waste picture is measured against.

One table, in per-mille, each row with its article reference and the date it applies by (an
integer YYYYMMDD). Rates computed from recycling records are integer per-mille too, so comparing
them needs no floats.
"""

from __future__ import annotations

from dataclasses import dataclass

KIND_MATERIAL_RECOVERY = "material_recovery"  # recovered mass of an element / its mass in the input
KIND_RECYCLING_EFFICIENCY = "recycling_efficiency"  # recycled output mass / input mass
KIND_RECYCLED_CONTENT = "recycled_content"  # minimum share of recycled material in new batteries
MATERIAL_ALL = "all"  # a recycling-efficiency row: the whole battery mass


@dataclass(frozen=True)
class Target:
    """One target: which rate, for which material, how high, by when, and where the law says so."""

    kind: str
    material: str
    per_mille: int
    by: int  # YYYYMMDD
    reference: str


TARGETS: tuple[Target, ...] = (
    # Annex XII Part B: recycling efficiency of lithium-based batteries (EV batteries are lithium-based).
    Target(KIND_RECYCLING_EFFICIENCY, MATERIAL_ALL, 650, 20251231, "Reg. (EU) 2023/1542 Annex XII Part B 1(b)"),
    Target(KIND_RECYCLING_EFFICIENCY, MATERIAL_ALL, 700, 20301231, "Reg. (EU) 2023/1542 Annex XII Part B 2(b)"),
    # Annex XII Part C: recovery of materials, by end-2027 and by end-2031.
    Target(KIND_MATERIAL_RECOVERY, "co", 900, 20271231, "Reg. (EU) 2023/1542 Annex XII Part C 1(a)"),
    Target(KIND_MATERIAL_RECOVERY, "cu", 900, 20271231, "Reg. (EU) 2023/1542 Annex XII Part C 1(a)"),
    Target(KIND_MATERIAL_RECOVERY, "li", 500, 20271231, "Reg. (EU) 2023/1542 Annex XII Part C 1(b)"),
    Target(KIND_MATERIAL_RECOVERY, "ni", 900, 20271231, "Reg. (EU) 2023/1542 Annex XII Part C 1(a)"),
    Target(KIND_MATERIAL_RECOVERY, "pb", 900, 20271231, "Reg. (EU) 2023/1542 Annex XII Part C 1(a)"),
    Target(KIND_MATERIAL_RECOVERY, "co", 950, 20311231, "Reg. (EU) 2023/1542 Annex XII Part C 2(a)"),
    Target(KIND_MATERIAL_RECOVERY, "cu", 950, 20311231, "Reg. (EU) 2023/1542 Annex XII Part C 2(a)"),
    Target(KIND_MATERIAL_RECOVERY, "li", 800, 20311231, "Reg. (EU) 2023/1542 Annex XII Part C 2(b)"),
    Target(KIND_MATERIAL_RECOVERY, "ni", 950, 20311231, "Reg. (EU) 2023/1542 Annex XII Part C 2(a)"),
    Target(KIND_MATERIAL_RECOVERY, "pb", 950, 20311231, "Reg. (EU) 2023/1542 Annex XII Part C 2(a)"),
    # Art. 8: minimum recycled content of new EV batteries, from 18 August 2031 and 18 August 2036.
    Target(KIND_RECYCLED_CONTENT, "co", 160, 20310818, "Reg. (EU) 2023/1542 Art. 8(2)(a)"),
    Target(KIND_RECYCLED_CONTENT, "li", 60, 20310818, "Reg. (EU) 2023/1542 Art. 8(2)(c)"),
    Target(KIND_RECYCLED_CONTENT, "ni", 60, 20310818, "Reg. (EU) 2023/1542 Art. 8(2)(d)"),
    Target(KIND_RECYCLED_CONTENT, "pb", 850, 20310818, "Reg. (EU) 2023/1542 Art. 8(2)(b)"),
    Target(KIND_RECYCLED_CONTENT, "co", 260, 20360818, "Reg. (EU) 2023/1542 Art. 8(3)(a)"),
    Target(KIND_RECYCLED_CONTENT, "li", 120, 20360818, "Reg. (EU) 2023/1542 Art. 8(3)(c)"),
    Target(KIND_RECYCLED_CONTENT, "ni", 150, 20360818, "Reg. (EU) 2023/1542 Art. 8(3)(d)"),
    Target(KIND_RECYCLED_CONTENT, "pb", 850, 20360818, "Reg. (EU) 2023/1542 Art. 8(3)(b)"),
)


def compute_per_mille(part: int, whole: int) -> int | None:
    """part / whole in integer per-mille, rounded down; None when there is no whole to divide by."""
    return None if whole <= 0 else part * 1000 // whole


def targets_of(kind: str) -> list[Target]:
    """The rows of one kind, in table order."""
    return [target for target in TARGETS if target.kind == kind]
