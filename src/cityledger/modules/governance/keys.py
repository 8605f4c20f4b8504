"""Every state key of governance, built in one place."""

from ...core.statekeys import PREFIX_GOVERNANCE, collection_prefix, make_key

_CONSORTIUM = 0x01
_VALIDATOR = 0x02
_PROPOSAL = 0x03
_NEXT_PROPOSAL_ID = 0x04
_PARAM = 0x05

CONSORTIUM_KEY = make_key(PREFIX_GOVERNANCE, _CONSORTIUM)
NEXT_PROPOSAL_ID_KEY = make_key(PREFIX_GOVERNANCE, _NEXT_PROPOSAL_ID)
VALIDATORS_PREFIX = collection_prefix(PREFIX_GOVERNANCE, _VALIDATOR)
PROPOSALS_PREFIX = collection_prefix(PREFIX_GOVERNANCE, _PROPOSAL)


def validator_key(pub_key: bytes) -> bytes:
    """Key of a validator's voting power."""
    return make_key(PREFIX_GOVERNANCE, _VALIDATOR, pub_key)


def proposal_key(proposal_id: int) -> bytes:
    """Key of a proposal."""
    return make_key(PREFIX_GOVERNANCE, _PROPOSAL, proposal_id.to_bytes(8, "big"))


def param_key(name: str) -> bytes:
    """Key of a governance parameter's value."""
    return make_key(PREFIX_GOVERNANCE, _PARAM, name.encode())
