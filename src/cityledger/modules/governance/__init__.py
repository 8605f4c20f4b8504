"""governance: consortium members, validator set and parameters, changed by k-of-n votes."""

from ...core.statekeys import PREFIX_GOVERNANCE
from ..base import Module
from .errors import ERR_UNKNOWN_ACTION, ERRORS
from .genesis import adopt_validators, get_validator_set, init_genesis
from .handlers import ACTIONS, PARAMS, get_consortium, process_submit_proposal, process_vote
from .invariants import check_consortium
from .keys import param_key
from .messages import Action, MembershipChange, ParamChange, SubmitProposal, ValidatorChange, Vote
from .queries import query_consortium, query_proposal, query_proposals, query_validators

MODULE = Module(
    name="governance",
    prefix=PREFIX_GOVERNANCE,
    errors=ERRORS,
    handlers={SubmitProposal: process_submit_proposal, Vote: process_vote},
    queries={"consortium": query_consortium, "proposal": query_proposal, "proposals": query_proposals,
             "validators": query_validators},
    init_genesis=init_genesis,
    invariants=(check_consortium,),
    params=PARAMS,
    actions=ACTIONS,
    param_key=param_key,
    unknown_action=ERR_UNKNOWN_ACTION,
    validator_set=get_validator_set,
    adopt_validators=adopt_validators,
)

__all__ = ["Action", "MODULE", "MembershipChange", "ParamChange", "SubmitProposal", "ValidatorChange", "Vote",
           "get_consortium", "param_key"]
