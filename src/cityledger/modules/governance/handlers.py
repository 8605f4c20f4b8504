"""Governance state transitions: proposals approved by k of the n consortium members execute."""

from __future__ import annotations

from ...core.encoding import decoder, encode
from ...core.errors import TxError
from ...core.events import ValidatorUpdate
from ...core.state import Overlay, StateReader
from ...core.types import ADDRESS_LEN
from ..base import Context, encode_param
from .errors import (
    ERR_INVALID_MEMBERSHIP,
    ERR_INVALID_PARAM,
    ERR_INVALID_VALIDATOR,
    ERR_NOT_MEMBER,
    ERR_PROPOSAL_CLOSED,
    ERR_UNKNOWN_PROPOSAL,
)
from .keys import CONSORTIUM_KEY, NEXT_PROPOSAL_ID_KEY, proposal_key, validator_key
from .messages import (
    MAX_ACTION_BYTES,
    MAX_MEMBERS,
    MAX_PROPOSAL_ID,
    Consortium,
    MembershipChange,
    ParamChange,
    Proposal,
    SubmitProposal,
    ValidatorChange,
    Vote,
)

_CONSORTIUM = decoder(Consortium)
_PROPOSAL = decoder(Proposal)
DEFAULT_VOTING_PERIOD_BLOCKS = 10_000
MAX_VALIDATOR_POWER = 1_000_000


def get_consortium(state: StateReader) -> Consortium:
    """The consortium's members and threshold."""
    raw = state.get(CONSORTIUM_KEY)
    return Consortium([], 1) if raw is None else _CONSORTIUM.decode_lenient(raw)


def get_proposal(state: StateReader, proposal_id: int) -> Proposal | None:
    """A proposal by id, or None (also for an id out of range)."""
    if not 1 <= proposal_id <= MAX_PROPOSAL_ID:
        return None
    raw = state.get(proposal_key(proposal_id))
    return None if raw is None else _PROPOSAL.decode_lenient(raw)


def get_validator_power(state: StateReader, pub_key: bytes) -> int:
    """A validator's voting power (0 if not a validator)."""
    raw = state.get(validator_key(pub_key))
    return 0 if raw is None else int.from_bytes(raw, "big")


def set_validator_power(ctx: Context, pub_key: bytes, power: int) -> None:
    """Write a validator's power and tell the engine."""
    if power:
        ctx.state.set(validator_key(pub_key), power.to_bytes(8, "big"))
    else:
        ctx.state.delete(validator_key(pub_key))
    ctx.validator_updates.append(ValidatorUpdate("ed25519", pub_key, power))


def is_member(state: StateReader, address: bytes) -> bool:
    """True if address is a consortium member."""
    return address in get_consortium(state).members


def _require_member(ctx: Context) -> None:
    if not is_member(ctx.state, ctx.sender):
        raise ERR_NOT_MEMBER(f"sender: {ctx.sender.hex()} is not a consortium member", "sender")


def process_submit_proposal(ctx: Context, msg: SubmitProposal) -> None:
    """Open a proposal; the proposer's approval counts, and it executes at once if that suffices."""
    # Check: only members propose, and the action is one this ledger knows.
    _require_member(ctx)
    if len(msg.action) > MAX_ACTION_BYTES:
        raise ERR_INVALID_PARAM(f"action: {len(msg.action)} bytes exceeds {MAX_ACTION_BYTES}", "action")
    ctx.actions.decode(msg.action)
    raw_next = ctx.state.get(NEXT_PROPOSAL_ID_KEY)
    proposal_id = 1 if raw_next is None else int.from_bytes(raw_next, "big")
    ctx.state.set(NEXT_PROPOSAL_ID_KEY, (proposal_id + 1).to_bytes(8, "big"))
    period = ctx.params.get("governance.voting_period_blocks")
    proposal = Proposal(proposal_id, ctx.sender, msg.action, ctx.height, ctx.height + period, [ctx.sender],
                        "open", "")
    ctx.emit("proposal_submitted", proposal_id=proposal_id, proposer=ctx.sender)
    _save_or_execute(ctx, proposal)


def process_vote(ctx: Context, msg: Vote) -> None:
    """Record a member's approval (or its withdrawal); execute once the threshold is met."""
    # Check: a member votes on an open, unexpired proposal.
    _require_member(ctx)
    if not 1 <= msg.proposal_id <= MAX_PROPOSAL_ID:
        raise ERR_UNKNOWN_PROPOSAL(f"proposal_id: expected 1 to {MAX_PROPOSAL_ID}, got {msg.proposal_id}",
                                   "proposal_id")
    proposal = get_proposal(ctx.state, msg.proposal_id)
    if proposal is None:
        raise ERR_UNKNOWN_PROPOSAL(f"proposal_id: no proposal {msg.proposal_id}", "proposal_id")
    if proposal.status != "open":
        raise ERR_PROPOSAL_CLOSED(f"proposal_id: proposal {msg.proposal_id} is {proposal.status}", "proposal_id")
    if ctx.height > proposal.expiry_height:
        raise ERR_PROPOSAL_CLOSED(f"proposal_id: proposal {msg.proposal_id} expired at height "
                                  f"{proposal.expiry_height}", "proposal_id")
    approvals = set(proposal.approvals)
    if msg.approve:
        approvals.add(ctx.sender)
    else:
        approvals.discard(ctx.sender)
    ctx.emit("vote", proposal_id=msg.proposal_id, voter=ctx.sender, approve=msg.approve)
    _save_or_execute(ctx, _replace(proposal, approvals=sorted(approvals)))


def _save_or_execute(ctx: Context, proposal: Proposal) -> None:
    consortium = get_consortium(ctx.state)
    valid = [a for a in proposal.approvals if a in consortium.members]
    if len(valid) >= consortium.threshold:
        proposal = _execute(ctx, proposal)
    ctx.state.set(proposal_key(proposal.id), encode(proposal))


def _execute(ctx: Context, proposal: Proposal) -> Proposal:
    """Run the action in its own journal: a failing action marks the proposal failed, nothing more."""
    journal = Overlay(ctx.state)
    saved = ctx.state
    ctx.state = journal
    updates_before = len(ctx.validator_updates)
    try:
        ctx.actions.execute(ctx, ctx.actions.decode(proposal.action))
    except TxError as exc:
        del ctx.validator_updates[updates_before:]
        ctx.state = saved
        ctx.emit("proposal_failed", proposal_id=proposal.id, reason=exc.message)
        return _replace(proposal, status="failed", outcome=exc.message)
    ctx.state = saved
    journal.fold_into(saved)
    ctx.emit("proposal_executed", proposal_id=proposal.id)
    return _replace(proposal, status="executed", outcome="ok")


def _replace(proposal: Proposal, **changes) -> Proposal:
    import msgspec

    return msgspec.structs.replace(proposal, **changes)


def execute_param_change(ctx: Context, action: ParamChange) -> None:
    """Set a parameter within its declared bounds."""
    bounds = ctx.params.bounds(action.name)
    if bounds is None:
        raise ERR_INVALID_PARAM(f"name: unknown parameter {action.name!r}; known: {', '.join(ctx.params.names())}",
                                "name")
    low, high = bounds
    if not low <= action.value <= high:
        raise ERR_INVALID_PARAM(f"value: {action.name} must be {low} to {high}, got {action.value}", "value")
    ctx.state.set(ctx.params.key(action.name), encode_param(action.value))
    ctx.emit("param_changed", name=action.name, value=action.value)


def execute_validator_change(ctx: Context, action: ValidatorChange) -> None:
    """Add, re-weight or remove a validator."""
    if len(action.pub_key) != 32:
        raise ERR_INVALID_VALIDATOR(f"pub_key: expected 32 bytes (Ed25519), got {len(action.pub_key)}", "pub_key")
    if not 0 <= action.power <= MAX_VALIDATOR_POWER:
        raise ERR_INVALID_VALIDATOR(f"power: expected 0 to {MAX_VALIDATOR_POWER}, got {action.power}", "power")
    if action.power == 0 and get_validator_power(ctx.state, action.pub_key) == 0:
        raise ERR_INVALID_VALIDATOR(f"pub_key: {action.pub_key.hex()} is not a validator", "pub_key")
    set_validator_power(ctx, action.pub_key, action.power)
    ctx.emit("validator_changed", pub_key=action.pub_key, power=action.power)


def execute_membership_change(ctx: Context, action: MembershipChange) -> None:
    """Replace the member list and threshold."""
    members = sorted(set(action.members))
    if not 1 <= len(members) <= MAX_MEMBERS or any(len(m) != ADDRESS_LEN for m in members):
        raise ERR_INVALID_MEMBERSHIP(f"members: expected 1 to {MAX_MEMBERS} distinct 20-byte addresses", "members")
    if not 1 <= action.threshold <= len(members):
        raise ERR_INVALID_MEMBERSHIP(f"threshold: expected 1 to {len(members)}, got {action.threshold}", "threshold")
    ctx.state.set(CONSORTIUM_KEY, encode(Consortium(members, action.threshold)))
    ctx.emit("membership_changed", members=len(members), threshold=action.threshold)


ACTIONS = {
    ParamChange: execute_param_change,
    ValidatorChange: execute_validator_change,
    MembershipChange: execute_membership_change,
}
PARAMS = {"governance.voting_period_blocks": (DEFAULT_VOTING_PERIOD_BLOCKS, 1, 10_000_000)}
