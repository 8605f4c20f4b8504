"""Answers of the city dashboard's data routes (api/explorer/dashboard.py): the data behind each chart."""

from __future__ import annotations

import msgspec


class _View(msgspec.Struct, kw_only=True, frozen=True):
    """Base of response bodies."""


class ChainChartView(_View):
    """The chain's recent blocks as chart series, oldest first, and its health at `to_height`."""

    from_height: int
    to_height: int
    heights: list[int]
    interval_ms: list[int]  # time since the block (or genesis) before; 0 where that height is not stored
    txs: list[int]  # txs per block
    txs_by_module: dict[str, int]  # messages in these blocks, by the module in their type tag
    mempool_size: int
    validators: int


class BatteryStagesView(_View):
    """How many battery passports are in each life-cycle stage."""

    stages: dict[str, int]


DASHBOARD_VIEW_TYPES = (ChainChartView, BatteryStagesView)
