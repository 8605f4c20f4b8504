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


class DevicesByKindView(_View):
    """Devices registered and not decommissioned, by kind, over blocks 1 to `counted_to` (of `height`)."""

    counted_to: int  # the events of blocks up to here are counted (a long chain catches up over requests)
    height: int
    kinds: dict[str, int]


class PaymentsPerDayView(_View):
    """Per day of block time (UTC), oldest first: vouchers redeemed and what they paid, by the payee's declared
    counterparty kind ("charger": charging operators), and channels opened."""

    counted_to: int
    height: int
    days: list[str]  # YYYY-MM-DD, only days with payment events
    redeemed: dict[str, list[int]]  # kind -> redemptions per day (one redemption settles one or more sessions)
    paid: dict[str, list[int]]  # kind -> micro-credits paid per day
    channels_opened: list[int]


class TargetVerdict(_View):
    """One Annex XII target row and whether the rate meets it (None: nothing of that material went in)."""

    per_mille: int
    by: int  # YYYYMMDD
    reference: str
    met: bool | None


class MaterialRecovery(_View):
    """One element's recovered mass against its mass in the recyclers' input."""

    contained_g: int
    recovered_g: int
    per_mille: int | None
    targets: list[TargetVerdict]


class RecyclingEfficiency(_View):
    """Recycled output mass against input mass."""

    per_mille: int | None
    targets: list[TargetVerdict]


class RecyclingView(_View):
    """Every recycler's batches summed, with per-mille rates against Reg. (EU) 2023/1542 Annex XII."""

    height: int
    recyclers: int
    complete: bool  # False when more recyclers exist than one query sums
    batches: int
    batteries: int
    input_mass_g: int
    output_mass_g: int
    material_recovery: dict[str, MaterialRecovery]
    recycling_efficiency: RecyclingEfficiency


class BatteryAlertsView(_View):
    """Passports whose SoH reports raised this node's passport service's end-of-first-life alert (SoCE at or
    below `threshold_percent`), by their stage on chain now; counts only, no passport id."""

    height: int
    threshold_percent: int
    alerted: int
    by_stage: dict[str, int]
    near_end_of_first_life: int  # alerted and still in first life (in_service or repaired)
    complete: bool  # False when more passports alerted than one answer counts


class ProgrammeBudget(_View):
    """One reward programme's budget and claims."""

    programme_id: int
    model: str
    budget: int  # micro-credits ever escrowed
    remaining: int
    claims: int
    withdrawn: bool


class RewardsView(_View):
    """The newest reward programmes (newest first) and how many there are."""

    height: int
    count: int
    programmes: list[ProgrammeBudget]


class ValidatorSigning(_View):
    """One validator of the set in state, and the recent commits it signed."""

    pub_key: str  # hex Ed25519 public key
    address: str  # its consensus address, upper-case hex (the first 20 bytes of the key's SHA-256)
    power: int
    signed: int  # of `heights`, the commits carrying its signature for the block
    last_signed: int | None  # the newest of `heights` it signed; None: none of them
    up: bool  # signed the newest commit known


class ValidatorsView(_View):
    """The validator set and who signed the recent commits, as this node's engine saw them, oldest first.

    source "votes": the commit signatures consensus handed to FinalizeBlock (CometBFT's decided_last_commit),
    kept since this process started; "solo": this node commits every block alone, so the set's validator
    signs each stored block."""

    height: int
    engine: str
    source: str
    heights: list[int]
    signed_power: list[int]  # per height: the power whose signatures the commit carries
    total_power: int  # of the set in state now
    up: int  # validators of the set that signed the newest commit known
    validators: list[ValidatorSigning]


class ChargingPerDayView(_View):
    """Per day (UTC, the day a session ended), oldest first: the node's CSMS's ended sessions and the energy they
    delivered. Aggregates only: no session, charger, idToken, vehicle or meter series."""

    days: list[str]  # YYYY-MM-DD, only days with ended sessions
    sessions: list[int]
    energy_wh: list[int]


DASHBOARD_VIEW_TYPES = (ValidatorsView, ChargingPerDayView, ChainChartView, BatteryStagesView, DevicesByKindView,
                        PaymentsPerDayView, RecyclingView, BatteryAlertsView, RewardsView)
