"""Governance: k-of-n proposals for parameters, validators and membership."""

from cityledger.core.encoding import encode
from cityledger.modules.governance import MembershipChange, ParamChange, SubmitProposal, ValidatorChange, Vote
from cityledger.modules.governance.errors import ERR_NOT_MEMBER, ERR_PROPOSAL_CLOSED, ERR_UNKNOWN_ACTION
from cityledger.modules.governance.handlers import get_consortium, get_proposal, get_validator_power

from helpers import assert_error_kind


def propose(chain, member, action):
    return chain.block(chain.tx(member, SubmitProposal(encode(action))))


def test_param_change_needs_two_of_three(chain):
    m0, m1, _ = chain.members
    result = propose(chain, m0, ParamChange("governance.voting_period_blocks", 50))
    assert result.tx_results[0].ok
    assert chain.app.params(chain.store).get("governance.voting_period_blocks") == 10_000
    assert get_proposal(chain.store, 1).status == "open"
    chain.block(chain.tx(m1, Vote(1, True)))
    assert get_proposal(chain.store, 1).status == "executed"
    assert chain.app.params(chain.store).get("governance.voting_period_blocks") == 50


def test_invalid_non_member_cannot_propose_or_vote(chain):
    outsider = chain.accounts[0]
    result = propose(chain, outsider, ParamChange("governance.voting_period_blocks", 50))
    assert_error_kind(result.tx_results[0], ERR_NOT_MEMBER)
    assert "not a consortium member" in result.tx_results[0].log
    propose(chain, chain.members[0], ParamChange("governance.voting_period_blocks", 50))
    vote = chain.block(chain.tx(outsider, Vote(1, True)))
    assert_error_kind(vote.tx_results[0], ERR_NOT_MEMBER)
    assert get_proposal(chain.store, 1).status == "open"


def test_invalid_param_out_of_bounds_marks_proposal_failed(chain):
    m0, m1, _ = chain.members
    propose(chain, m0, ParamChange("governance.voting_period_blocks", 0))
    chain.block(chain.tx(m1, Vote(1, True)))
    proposal = get_proposal(chain.store, 1)
    assert proposal.status == "failed" and "must be 1 to" in proposal.outcome
    assert chain.app.params(chain.store).get("governance.voting_period_blocks") == 10_000


def test_invalid_unknown_action_rejected(chain):
    result = chain.block(chain.tx(chain.members[0], SubmitProposal(b"\x93\xa3bad\x01\x02")))
    assert_error_kind(result.tx_results[0], ERR_UNKNOWN_ACTION)
    assert "known:" in result.tx_results[0].log


def test_validator_change_reaches_the_engine(chain):
    m0, m1, _ = chain.members
    key = bytes(range(32))
    propose(chain, m0, ValidatorChange(key, 7))
    result = chain.block(chain.tx(m1, Vote(1, True)))
    assert [(u.pub_key, u.power) for u in result.validator_updates] == [(key, 7)]
    assert get_validator_power(chain.store, key) == 7
    propose(chain, m0, ValidatorChange(key, 0))
    result = chain.block(chain.tx(m1, Vote(2, True)))
    assert [(u.pub_key, u.power) for u in result.validator_updates] == [(key, 0)]
    assert get_validator_power(chain.store, key) == 0


def test_membership_change_and_withdrawn_vote(chain):
    m0, m1, m2 = chain.members
    new_members = [m.address() for m in chain.members] + [chain.accounts[0].address()]
    propose(chain, m0, MembershipChange(new_members, 3))
    chain.block(chain.tx(m0, Vote(1, False)))  # the proposer withdraws
    chain.block(chain.tx(m1, Vote(1, True)))
    assert get_proposal(chain.store, 1).status == "open"
    chain.block(chain.tx(m2, Vote(1, True)))
    assert get_proposal(chain.store, 1).status == "executed"
    assert get_consortium(chain.store).threshold == 3 and len(get_consortium(chain.store).members) == 4


def test_invalid_vote_on_expired_proposal(chain):
    m0, m1, _ = chain.members
    propose(chain, m0, ParamChange("governance.voting_period_blocks", 2))
    chain.block(chain.tx(m1, Vote(1, True)))
    propose(chain, m0, ParamChange("governance.voting_period_blocks", 9))
    for _ in range(3):
        chain.block()
    result = chain.block(chain.tx(m1, Vote(2, True)))
    assert_error_kind(result.tx_results[0], ERR_PROPOSAL_CLOSED)
    assert "expired" in result.tx_results[0].log
