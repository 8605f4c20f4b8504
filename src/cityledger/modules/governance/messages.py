"""Governance messages, proposal actions and stored records."""

from __future__ import annotations

from ...core.encoding import Message, Record
from ...core.types import Address, Height

MAX_MEMBERS = 64
MAX_VALIDATORS = 150
MAX_ACTION_BYTES = 64 * 1024
MAX_PROPOSAL_ID = 2**63 - 1  # ids count up from 1 and are stored as 8 bytes


class SubmitProposal(Message, tag="governance/1.0/submit_proposal"):
    """A consortium member proposes an action (its canonical bytes); submitting counts as a yes."""

    action: bytes


class Vote(Message, tag="governance/1.0/vote"):
    """A consortium member approves (or withdraws approval of) an open proposal."""

    proposal_id: int
    approve: bool


class Action(Message):
    """Base of every action a proposal can carry; modules add their own (e.g. issuer accreditation)."""


class ParamChange(Action, tag="governance/1.0/param_change"):
    """Set a governance-controlled integer parameter."""

    name: str
    value: int


class ValidatorChange(Action, tag="governance/1.0/validator_change"):
    """Set a validator's voting power (0 removes it). pub_key is a 32-byte Ed25519 consensus key."""

    pub_key: bytes
    power: int


class MembershipChange(Action, tag="governance/1.0/membership_change"):
    """Replace the consortium's member list and approval threshold."""

    members: list[Address]
    threshold: int


class Consortium(Record):
    """The members (addresses, sorted) and how many must approve a proposal."""

    members: list[Address]
    threshold: int


class Proposal(Record):
    """An open or decided proposal."""

    id: int
    proposer: Address
    action: bytes
    submit_height: Height
    expiry_height: Height
    approvals: list[Address]
    status: str  # "open", "executed", "failed", "expired"
    outcome: str
