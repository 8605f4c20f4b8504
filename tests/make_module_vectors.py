"""Regenerate tests/vectors/{bank,batteries,consent,devices,governance,identity,mobility,payments}.json from the code.

    .venv/bin/python tests/make_module_vectors.py [module ...]

Each module's story runs on a real app: `send` appends a step to the history (and must succeed),
`case` forks a fresh app at the current history, delivers one transaction there and records what
followed. The author states the expected error kind of each case; the generator refuses to write a
vector whose outcome differs, so a vector records intent that the code was checked against.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).parent))

from cityledger.core.encoding import Message, encode  # noqa: E402
from cityledger.core.keys import PrivateKey, Signer, compute_address  # noqa: E402
from cityledger.core.types import address_to_str  # noqa: E402
from cityledger.modules.identity import VerificationKey  # noqa: E402
from cityledger.offchain.identity.ledger import LocalLedger, TxOutcome  # noqa: E402
from cityledger.offchain.identity.types import CredentialType  # noqa: E402

from helpers import fixed_key  # noqa: E402
from module_vectors import (  # noqa: E402
    GENESIS_TIME_NS,
    MODULE_NAMES,
    VECTORS,
    AppReplay,
    Step,
    key_entry,
    message_entry,
)

GENESIS_BALANCE = 1_000_000_000
VALIDATOR_KEY = fixed_key(90)
# The credential that binds chargers and meters to their owners (devices.BINDING_TYPES).
DEVICE_REGISTRATION_TYPE = CredentialType("device-registration", "1.0",
                                          ("device_did", "owner_account", "registered_on"))


def genesis(members: Sequence[PrivateKey], accounts: Sequence[PrivateKey], threshold: int = 2,
            dids: Sequence[dict] = ()) -> dict[str, Any]:
    """An app_state: a consortium, one validator, equal allocations and optional genesis DIDs."""
    state: dict[str, Any] = {
        "governance": {"members": [{"name": f"Org {i}", "address": address_to_str(k.address())}
                                   for i, k in enumerate(members)],
                       "threshold": threshold,
                       "validators": [{"pub_key": VALIDATOR_KEY.public_key.key.hex(), "power": 10}]},
        "bank": {"allocations": [{"address": address_to_str(k.address()), "amount": GENESIS_BALANCE}
                                 for k in list(members) + list(accounts)]},
    }
    if dids:
        state["identity"] = {"dids": list(dids)}
    return state


def did_entry(key: PrivateKey, accreditations: Sequence[str], tails_url: str = "") -> dict[str, Any]:
    """A genesis organisation DID controlled by one key, which is also its key-1."""
    public = {"scheme": "ed25519", "key": key.public_key.key.hex()}
    services = [{"fragment": "tails", "type": "AnonCredsTailsServer", "endpoint": tails_url}] if tails_url else []
    return {"controller": {"threshold": 1, "keys": [public]}, "salt": "",
            "keys": [dict(public, fragment="key-1", purposes=["assertionMethod", "authentication"])],
            "services": services, "accreditations": list(accreditations)}


class Story(LocalLedger):
    """A module's history on a live app (also a ledger for issuers and wallets), and its cases."""

    def __init__(self, module: str, genesis_state: dict[str, Any], keys: dict[str, PrivateKey], tmp: Path) -> None:
        self.module = module
        self.chain_id = f"vectors-{module}-1"
        self.genesis = genesis_state
        self.tmp = tmp
        self.replay = AppReplay(self.chain_id, genesis_state, tmp / f"{module}-story.sqlite")
        super().__init__(self.replay.app, time_ns=GENESIS_TIME_NS)
        self.keys: dict[str, PrivateKey] = {}
        for name, key in keys.items():
            self.name(name, key)
        self.history: list[tuple[dict, Step]] = []
        self.cases: list[dict[str, Any]] = []

    def name(self, name: str, key: PrivateKey) -> PrivateKey:
        """Give a key its name in the vectors."""
        if name in self.keys and self.keys[name].seed != key.seed:
            raise ValueError(f"key name {name!r} used twice")
        self.keys[name] = key
        return key

    def _name_of(self, key: PrivateKey) -> str:
        for name, known in self.keys.items():
            if known.seed == key.seed and known.scheme == key.scheme:
                return name
        name = f"key-{len(self.keys)}"
        self.name(name, key)
        return name

    def _step(self, keys: Sequence[PrivateKey], messages: Sequence[Message], signer: Signer | None):
        keys = list(keys)
        signer = signer or keys[0].signer()
        entry: dict[str, Any] = {"signers": [self._name_of(k) for k in keys],
                                 "messages": [message_entry(m) for m in messages]}
        if signer != keys[0].signer():
            entry["signer"] = {"threshold": signer.threshold,
                               "keys": [self._name_of(self._key_for(pk)) for pk in signer.keys]}
        return entry, Step(keys, signer, list(messages))

    def _key_for(self, public) -> PrivateKey:
        for key in self.keys.values():
            if key.public_key == public:
                return key
        raise ValueError("a signer's key must be named before use")

    def height(self) -> int:
        return self.replay.height

    def send(self, keys: Sequence[PrivateKey], messages: Sequence[Message], signer: Signer | None = None) -> TxOutcome:
        """Append a step to the history; it must succeed."""
        entry, step = self._step(keys, messages, signer)
        outcome = self.replay.deliver(step)
        if not outcome.ok:
            raise AssertionError(f"{self.module} history step {len(self.history)} failed: {outcome.error}")
        self.history.append((entry, step))
        return TxOutcome(self.replay.height, 0, "", "", ())

    def case(self, name: str, keys: Sequence[PrivateKey], messages: Sequence[Message], *,
             error: str | None = None, queries: Sequence[tuple[str, dict]] = (), signer: Signer | None = None,
             codespace: str | None = None) -> None:
        """Record a case: the current history as pre-state, one tx, and what followed on a fresh app."""
        if any(case["name"] == name for case in self.cases):
            raise ValueError(f"case {name!r} twice")
        entry, step = self._step(keys, messages, signer)
        fork = AppReplay(self.chain_id, self.genesis, self.tmp / f"{self.module}-{len(self.cases)}.sqlite")
        for _, prior in self.history:
            assert fork.deliver(prior).ok
        outcome = fork.deliver(step)
        got = None if outcome.ok else outcome.error
        wanted = None if error is None else {"codespace": codespace or self.module, "name": error}
        if got != wanted:
            raise AssertionError(f"{self.module}/{name}: expected {wanted or 'ok'}, got {got or 'ok'}")
        fork.app.check_invariants()
        address = compute_address(step.signer)
        self.cases.append({
            "name": name,
            "pre": {"blocks": len(self.history)},
            "tx": entry,
            "expect": {"ok": True, "events": outcome.events} if outcome.ok else {"error": got},
            "post": {"queries": [{"path": path, "args": args, "result": fork.query(path, args)}
                                 for path, args in queries],
                     "account": dict(fork.account(address), address=address_to_str(address))},
        })

    def document(self) -> dict[str, Any]:
        return {"module": self.module, "chain_id": self.chain_id, "genesis": self.genesis,
                "keys": {name: key_entry(key) for name, key in sorted(self.keys.items())},
                "history": [entry for entry, _ in self.history], "cases": self.cases}


def balance(key_or_address) -> tuple[str, dict]:
    address = key_or_address.address() if isinstance(key_or_address, PrivateKey) else key_or_address
    return ("bank/balance", {"address": address_to_str(address)})


def members_and_accounts() -> tuple[list[PrivateKey], list[PrivateKey]]:
    return [fixed_key(i) for i in range(3)], [fixed_key(10 + i) for i in range(3)]


def base_keys() -> dict[str, PrivateKey]:
    members, accounts = members_and_accounts()
    named = {f"m{i}": k for i, k in enumerate(members)}
    named.update({f"a{i}": k for i, k in enumerate(accounts)})
    return named


# -- bank --------------------------------------------------------------------------------------

def bank_story(tmp: Path) -> Story:
    from cityledger.modules.bank import MultiSend, Output, Transfer
    from cityledger.modules.bank.messages import MAX_OUTPUTS

    members, accounts = members_and_accounts()
    story = Story("bank", genesis(members, accounts), base_keys(), tmp)
    a0, a1, a2 = accounts
    fresh = story.name("fresh", fixed_key(40))
    story.send([a0], [Transfer(a1.address(), 100)])
    supply = ("bank/supply", {})
    story.case("transfer_moves_funds", [a0], [Transfer(a2.address(), 250)],
               queries=[balance(a0), balance(a2), supply])
    story.case("transfer_to_a_new_account", [a0], [Transfer(fresh.address(), 7)], queries=[balance(fresh), supply])
    story.case("transfer_to_self", [a1], [Transfer(a1.address(), 5)], queries=[balance(a1)])
    story.case("multi_send_pays_each_output", [a1], [MultiSend([Output(a0.address(), 1), Output(a2.address(), 2)])],
               queries=[balance(a0), balance(a1), balance(a2), supply])
    story.case("invalid_insufficient_funds", [a0], [Transfer(a1.address(), GENESIS_BALANCE)],
               error="insufficient_funds", queries=[balance(a0), balance(a1)])
    story.case("invalid_sender_without_account", [fresh], [Transfer(a1.address(), 1)],
               error="insufficient_funds", queries=[balance(a1)])
    story.case("invalid_amount_zero", [a0], [Transfer(a1.address(), 0)], error="invalid_amount",
               queries=[balance(a0)])
    story.case("invalid_amount_negative", [a0], [Transfer(a1.address(), -5)], error="invalid_amount",
               queries=[balance(a0)])
    story.case("invalid_address_length", [a0], [Transfer(b"\x01" * 19, 1)], error="invalid_address",
               queries=[balance(a0)])
    story.case("invalid_multi_send_is_all_or_nothing", [a2],
               [MultiSend([Output(a1.address(), GENESIS_BALANCE - 10), Output(a1.address(), 20)])],
               error="insufficient_funds", queries=[balance(a1), balance(a2)])
    story.case("invalid_multi_send_without_outputs", [a2], [MultiSend([])], error="too_many_outputs")
    story.case("invalid_multi_send_too_many_outputs", [a2], [MultiSend([Output(a1.address(), 1)] * (MAX_OUTPUTS + 1))],
               error="too_many_outputs", queries=[balance(a1)])
    story.case("invalid_multi_send_bad_output", [a2], [MultiSend([Output(a1.address(), 1), Output(a0.address(), 0)])],
               error="invalid_amount", queries=[balance(a1)])
    return story


# -- governance ----------------------------------------------------------------------------------

def governance_story(tmp: Path) -> Story:
    from cityledger.modules.bank import Transfer
    from cityledger.modules.governance import MembershipChange, ParamChange, SubmitProposal, ValidatorChange, Vote

    members, accounts = members_and_accounts()
    story = Story("governance", genesis(members, accounts), base_keys(), tmp)
    m0, m1, m2 = members
    a0 = accounts[0]

    def proposal(n: int) -> tuple[str, dict]:
        return ("governance/proposal", {"id": str(n)})

    consortium, validators = ("governance/consortium", {}), ("governance/validators", {})
    period = "governance.voting_period_blocks"
    story.case("submit_proposal_opens_it", [m0], [SubmitProposal(encode(ParamChange(period, 50)))],
               queries=[proposal(1)])
    story.case("invalid_non_member_cannot_propose", [a0], [SubmitProposal(encode(ParamChange(period, 50)))],
               error="not_a_member")
    story.case("invalid_unknown_action", [m0], [SubmitProposal(b"\x93\xa3bad\x01\x02")], error="unknown_action")
    story.send([m0], [SubmitProposal(encode(ParamChange(period, 50)))])  # proposal 1
    story.case("vote_executes_param_change", [m1], [Vote(1, True)], queries=[proposal(1)])
    story.case("withdrawn_vote_keeps_it_open", [m0], [Vote(1, False)], queries=[proposal(1)])
    story.case("invalid_non_member_cannot_vote", [a0], [Vote(1, True)], error="not_a_member", queries=[proposal(1)])
    story.case("invalid_vote_on_unknown_proposal", [m1], [Vote(9, True)], error="unknown_proposal")
    story.send([m1], [Vote(1, True)])  # executed: the voting period is now 50 blocks
    story.case("invalid_vote_on_executed_proposal", [m2], [Vote(1, True)], error="proposal_closed",
               queries=[proposal(1)])
    validator = bytes(range(32))
    story.send([m0], [SubmitProposal(encode(ValidatorChange(validator, 7)))])  # proposal 2
    story.case("validator_change_executes", [m1], [Vote(2, True)], queries=[proposal(2), validators])
    story.send([m0], [SubmitProposal(encode(ParamChange(period, 0)))])  # proposal 3: out of bounds
    story.case("invalid_param_out_of_bounds_fails_the_proposal", [m1], [Vote(3, True)], queries=[proposal(3)])
    story.send([m0], [SubmitProposal(encode(MembershipChange([m.address() for m in members] + [a0.address()], 3)))])
    story.case("membership_change_executes", [m1], [Vote(4, True)], queries=[proposal(4), consortium])
    story.send([m0], [SubmitProposal(encode(MembershipChange([m0.address()], 2)))])  # proposal 5: bad threshold
    story.case("invalid_membership_threshold_fails_the_proposal", [m1], [Vote(5, True)],
               queries=[proposal(5), consortium])
    story.send([m0], [SubmitProposal(encode(ParamChange(period, 1)))])  # proposal 6
    story.send([m1], [Vote(6, True)])  # the voting period is now 1 block
    story.send([m0], [SubmitProposal(encode(ParamChange(period, 60)))])  # proposal 7, expires next block
    story.send([a0], [Transfer(m0.address(), 1)])  # filler blocks: proposal 7 expires
    story.send([a0], [Transfer(m0.address(), 1)])
    story.case("invalid_vote_on_expired_proposal", [m1], [Vote(7, True)], error="proposal_closed",
               queries=[proposal(7)])
    return story


# -- identity ------------------------------------------------------------------------------------

def _document(key: PrivateKey, salt: bytes = b"org"):
    """A CreateDid for an organisation whose key-1 is its controller key, with a tails service."""
    from cityledger.modules.identity import PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION, CreateDid, Service

    keys = [VerificationKey("key-1", key.public_key, [PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION])]
    return CreateDid(salt, key.signer(), keys, [Service("tails", "AnonCredsTailsServer",
                                                        "https://office.city.example/tails")])


def _did_query(did: str) -> tuple[str, dict]:
    return ("identity/did", {"did": did})


def identity_story(tmp: Path) -> Story:
    from cityledger.modules.identity import compute_did

    members, accounts = members_and_accounts()
    story = Story("identity", genesis(members, accounts), base_keys(), tmp)
    org = story.name("org", PrivateKey(1, bytes([7]) * 32))
    _identity_documents(story, org)
    _identity_anchors(story, org, compute_did(org.signer(), b"org"))
    return story


def _identity_documents(story: Story, org: PrivateKey) -> None:
    """Create, refuse malformed documents, rotate and refuse stale or foreign updates."""
    import msgspec

    from cityledger.core.keys import make_signer
    from cityledger.modules.identity import (
        PURPOSE_AUTHENTICATION, CreateDid, DeactivateDid, Service, UpdateDid, compute_did)

    other = story.name("other", PrivateKey(1, bytes([8]) * 32))
    new = story.name("new", PrivateKey(1, bytes([9]) * 32))
    c1, c2, c3 = (story.name(f"council{i}", PrivateKey(1, bytes([20 + i]) * 32)) for i in (1, 2, 3))
    did = compute_did(org.signer(), b"org")
    story.case("create_did", [org], [_document(org)], queries=[_did_query(did)])
    council = make_signer(2, [c1.public_key, c2.public_key, c3.public_key])
    story.case("create_did_with_k_of_n_controller", [c1, c3], [CreateDid(b"council", council, [], [])],
               signer=council, queries=[_did_query(compute_did(council, b"council"))])
    story.case("invalid_create_signed_by_another_key", [other], [_document(org)], error="unauthorized")
    replace = msgspec.structs.replace
    for label, mutate in (
        ("fragment", lambda m: replace(m, keys=[VerificationKey("Key 1", m.keys[0].key, [PURPOSE_AUTHENTICATION])])),
        ("purpose", lambda m: replace(m, keys=[VerificationKey("key-1", m.keys[0].key, ["keyAgreement"])])),
        ("endpoint", lambda m: replace(m, services=[Service("tails", "Tails", "ftp://x")])),
        ("duplicate_fragments", lambda m: replace(m, keys=m.keys * 2)),
        ("salt", lambda m: replace(m, salt=b"s" * 33)),
    ):
        story.case(f"invalid_document_{label}", [org], [mutate(_document(org))], error="invalid_document")
    story.send([org], [_document(org)])
    story.case("invalid_create_twice", [org], [_document(org)], error="did_exists", queries=[_did_query(did)])
    rotated = [VerificationKey("key-1", new.public_key, [PURPOSE_AUTHENTICATION])]
    story.case("update_did_rotates_the_controller", [org], [UpdateDid(did, 1, new.signer(), rotated, [])],
               queries=[_did_query(did)])
    kept = replace(_document(new), salt=b"org")  # the update `cityledger did rotate` sends: services kept
    story.case("update_did_keeping_its_services", [org], [UpdateDid(did, 1, new.signer(), kept.keys, kept.services)],
               queries=[_did_query(did)])
    story.case("invalid_update_with_stale_version", [org], [UpdateDid(did, 5, new.signer(), rotated, [])],
               error="version_mismatch", queries=[_did_query(did)])
    story.case("invalid_update_by_another_key", [other], [UpdateDid(did, 1, other.signer(), [], [])],
               error="unauthorized", queries=[_did_query(did)])
    story.case("invalid_deactivate_unknown_did", [org], [DeactivateDid(compute_did(other.signer(), b""))],
               error="unknown_did")
    story.case("invalid_deactivate_not_a_did", [org], [DeactivateDid("did:web:example.com")], error="invalid_did")


def _identity_anchors(story: Story, org: PrivateKey, did: str) -> None:
    """Schemas, accreditation by governance, credential definitions and registries, deactivation."""
    from cityledger.modules.governance import SubmitProposal, Vote
    from cityledger.modules.identity import (
        AccreditIssuer, AnchorCredDef, AnchorSchema, DeactivateDid, compute_schema_id)
    from cityledger.offchain.identity import RESIDENT_ID, RESIDENT_ID_TYPE

    m0, m1 = story.keys["m0"], story.keys["m1"]
    story.case("anchor_schema", [org], [AnchorSchema(did, "city-pass", "1.0", ["a", "b"])],
               queries=[("identity/schema", {"id": compute_schema_id(did, "city-pass", "1.0")})])
    story.case("invalid_schema_with_unsorted_attributes", [org], [AnchorSchema(did, "x", "1.0", ["b", "a"])],
               error="invalid_anchored_object")
    story.case("invalid_schema_name", [org], [AnchorSchema(did, "bad name", "1.0", ["a"])],
               error="invalid_anchored_object")
    resident = AnchorSchema(did, RESIDENT_ID, "1.0", list(RESIDENT_ID_TYPE.attributes))
    story.send([org], [resident])
    schema_id = compute_schema_id(did, RESIDENT_ID, "1.0")
    story.case("invalid_schema_twice", [org], [resident], error="already_anchored")
    story.case("invalid_cred_def_by_unaccredited_issuer", [org],
               [AnchorCredDef(did, schema_id, "1", b'{"primary":{}}')], error="issuer_not_accredited")
    story.send([m0], [SubmitProposal(encode(AccreditIssuer(did, RESIDENT_ID)))])  # proposal 1
    story.case("accreditation_through_governance", [m1], [Vote(1, True)],
               queries=[("identity/issuers", {}), ("governance/proposal", {"id": "1"})])
    story.send([m1], [Vote(1, True)])
    story.case("invalid_cred_def_unknown_schema", [org],
               [AnchorCredDef(did, did + "/anoncreds/v0/SCHEMA/none/1.0", "1", b"{}")],
               error="unknown_anchored_object")
    story.case("invalid_cred_def_value", [org], [AnchorCredDef(did, schema_id, "2", b'{"primary":{"n":"1"}}')],
               error="invalid_anchored_object")
    _identity_registry(story, org, did)
    story.case("deactivate_did", [org], [DeactivateDid(did)], queries=[_did_query(did)])
    story.send([org], [DeactivateDid(did)])
    story.case("invalid_deactivated_did_cannot_act", [org], [AnchorSchema(did, "late", "1.0", ["a"])],
               error="did_deactivated", queries=[_did_query(did)])


def _identity_registry(story: Story, org: PrivateKey, did: str) -> None:
    """An office publishes (real AnonCreds objects), then registries and status lists are tried."""
    import msgspec

    from cityledger.modules.identity import AnchorCredDef, AnchorRevRegDef, UpdateStatusList, get_status_list
    from cityledger.offchain.identity import RESIDENT_ID_TYPE, IssuerService, TailsStore
    from test_identity_fixtures import fast_cred_defs

    other = story.keys["other"]
    office = IssuerService(story, [org], TailsStore(story.tmp / "tails", "https://office.city.example/tails"),
                           salt=b"org")
    with fast_cred_defs():
        published = office.publish(RESIDENT_ID_TYPE)  # schema (already there), cred def, registry + status list
    cred_def_id, rev_id = published["cred_def_id"], published["rev_reg_id"]
    anchored = [m for _, step in story.history for m in step.messages
                if isinstance(m, (AnchorCredDef, AnchorRevRegDef))]
    story.case("anchor_cred_def", [org], [msgspec.structs.replace(anchored[-2], tag="2")],
               queries=[("identity/cred_def", {"id": cred_def_id})])
    story.case("anchor_rev_reg_def", [org], [msgspec.structs.replace(anchored[-1], tag="2")],
               queries=[("identity/rev_reg_def", {"id": rev_id})])
    story.case("invalid_rev_reg_def_without_credentials", [org],
               [AnchorRevRegDef(did, cred_def_id, "2", 0, b"{}", "x", "https://x")], error="invalid_anchored_object",
               queries=[("identity/cred_def", {"id": cred_def_id}), ("identity/rev_reg_def", {"id": rev_id})])
    latest = get_status_list(story.store, rev_id)
    revoked_one = bytes([0b10]) + bytes(len(latest.revoked) - 1)

    def update(bits: bytes) -> UpdateStatusList:
        return UpdateStatusList(rev_id, bits, latest.accumulator)

    status = ("identity/status_list", {"id": rev_id})
    story.case("update_status_list_revokes", [org], [update(revoked_one)], queries=[status])
    story.case("invalid_status_list_by_another_key", [other], [update(revoked_one)], error="unauthorized",
               queries=[status])
    story.case("invalid_status_list_length", [org], [update(revoked_one[:-1])], error="invalid_status_list",
               queries=[status])
    story.send([org], [update(revoked_one)])
    story.case("invalid_status_list_unrevokes", [org], [update(bytes(len(revoked_one)))],
               error="invalid_status_list", queries=[status])


# -- devices -------------------------------------------------------------------------------------

class Fleet:
    """The devices story's cast: a manufacturer, a rogue one, a transport office issuing registrations."""

    def __init__(self, tmp: Path, module: str = "devices", extra_dids: Sequence[dict] = (),
                 extra_keys: dict[str, PrivateKey] | None = None) -> None:
        from cityledger.modules.identity import compute_did
        from cityledger.offchain.identity import (
            DEVICE_MANUFACTURER, VEHICLE_REGISTRATION, VEHICLE_REGISTRATION_TYPE, IssuerService, TailsStore)
        from test_identity_fixtures import fast_cred_defs

        members, accounts = members_and_accounts()
        keys = base_keys()
        self.maker, self.transport, self.rogue = (PrivateKey(1, bytes([s]) * 32) for s in (0x61, 0x42, 0x62))
        keys.update(maker=self.maker, transport=self.transport, rogue=self.rogue, **(extra_keys or {}))
        self.tails = TailsStore(tmp / "tails", "https://transport.city.example/tails")
        # The transport office also registers chargers and meters ("device-registration").
        types = [VEHICLE_REGISTRATION] + ([DEVICE_REGISTRATION_TYPE.name] if module == "payments" else [])
        dids = [did_entry(self.maker, [DEVICE_MANUFACTURER]), did_entry(self.rogue, []),
                did_entry(self.transport, types, self.tails.base_url), *extra_dids]
        self.story = Story(module, genesis(members, accounts, dids=dids), keys, tmp)
        self.maker_did = compute_did(self.maker.signer(), b"")
        self.rogue_did = compute_did(self.rogue.signer(), b"")
        self.office = IssuerService(self.story, [self.transport], self.tails)
        self.tmp = tmp
        with fast_cred_defs():
            self.office.publish(VEHICLE_REGISTRATION_TYPE)
            if module == "payments":
                self.office.publish(DEVICE_REGISTRATION_TYPE)

    def wallet(self):
        from cityledger.offchain.identity import TailsFetcher, Wallet

        base = self.tails.base_url
        return Wallet.in_memory(TailsFetcher(self.tmp / "tails-cache",
                                             transport=lambda url: self.office.serve_tails(url[len(base):])))

    def registered(self, wallet, name: str, device_did: str, credential: str = "vehicle-registration") -> PrivateKey:
        """A wallet account named `name`, holding a registration of the device to it."""
        account = self.story.name(name, wallet.account("vehicle"))
        values = {"device_did": device_did, "owner_account": address_to_str(account.address()),
                  "registered_on": 20250615}
        offer = self.office.offer(credential)
        request = wallet.request_credential(offer, self.story)
        wallet.store_credential(self.office.issue(request, values, f"REG-{name}"), self.story)
        return account

    def device(self, n: int) -> tuple[PrivateKey, str]:
        from cityledger.modules.devices import compute_device_did

        key = self.story.name(f"device{n}", PrivateKey(1, bytes([0x70 + n]) * 32))
        return key, compute_device_did(key.public_key)

    def register(self, key: PrivateKey, kind: str = "vehicle", model: str = "CityCar-e1", rogue: bool = False):
        from cityledger.offchain.identity.devices import build_registration

        by, signer = (self.rogue_did, self.rogue) if rogue else (self.maker_did, self.maker)
        return build_registration(self.story.chain_id, kind, model, key, by, signer)

    def prove(self, wallet, device_did: str, owner: PrivateKey) -> bytes:
        from cityledger.offchain.identity.devices import prove_ownership

        return prove_ownership(wallet, self.story, self.story.chain_id, device_did, owner)


def _show(device_did: str) -> list[tuple[str, dict]]:
    return [("devices/device", {"did": device_did}), ("identity/did", {"did": device_did})]


def devices_story(tmp: Path) -> Story:
    fleet = Fleet(tmp)
    d1, did1 = fleet.device(1)
    _, did3 = fleet.device(3)
    _devices_registration(fleet, d1, did1)
    fleet.story.send([fleet.maker], [fleet.register(d1)])
    fleet.story.send([fleet.maker], [fleet.register(fleet.story.keys["device3"])])
    fleet.story.case("invalid_register_twice", [fleet.maker], [fleet.register(d1)], error="already_registered",
                     queries=_show(did1))
    _devices_ownership(fleet, did1, did3)
    return fleet.story


def _devices_registration(fleet: Fleet, d1: PrivateKey, did1: str) -> None:
    """Registration and its refusals: signatures, manufacturer accreditation, fields."""
    import msgspec

    story, maker = fleet.story, fleet.maker
    d2, _ = fleet.device(2)
    story.case("register_device", [maker], [fleet.register(d1)], queries=_show(did1))
    good = fleet.register(d2)
    forged = PrivateKey(1, b"\x99" * 32).sign(b"x")
    story.case("invalid_register_forged_manufacturer_signature", [maker],
               [msgspec.structs.replace(good, manufacturer_signature=forged)], error="bad_signature")
    story.case("invalid_register_without_the_device_key", [maker],
               [msgspec.structs.replace(good, device_signature=d1.sign(b"x"))], error="bad_signature")
    story.case("invalid_register_by_unaccredited_manufacturer", [fleet.rogue], [fleet.register(d2, rogue=True)],
               error="manufacturer_not_trusted")
    story.case("invalid_register_kind", [maker], [fleet.register(d2, kind="toaster")], error="invalid_device")
    story.case("invalid_register_model", [maker], [fleet.register(d2, model="bad model")], error="invalid_device")


def _devices_ownership(fleet: Fleet, did1: str, did3: str) -> None:
    """Binding, offers, acceptance and decommissioning, each with its refusals."""
    from cityledger.modules.devices import AcceptTransfer, BindDevice, Decommission, OfferTransfer

    story, maker = fleet.story, fleet.maker
    first = fleet.wallet()
    o1 = fleet.registered(first, "owner1", did1)
    proof1 = fleet.prove(first, did1, o1)
    thief = story.name("thief", fleet.wallet().account("vehicle"))
    story.case("bind_device", [o1], [BindDevice(did1, proof1)], queries=_show(did1))
    story.case("invalid_bind_with_garbage_proof", [o1], [BindDevice(did1, b"{}")], error="binding_proof_rejected",
               queries=_show(did1))
    story.case("invalid_bind_with_another_accounts_proof", [thief], [BindDevice(did1, proof1)],
               error="binding_proof_rejected", queries=_show(did1))
    story.case("invalid_bind_unknown_device", [o1], [BindDevice(fleet.device(2)[1], proof1)], error="unknown_device")
    story.send([o1], [BindDevice(did1, proof1)])
    story.case("invalid_bind_already_bound", [o1], [BindDevice(did1, proof1)], error="already_bound")
    second = fleet.wallet()
    o2 = fleet.registered(second, "owner2", did1)
    story.case("invalid_accept_without_offer", [o2], [AcceptTransfer(did1, b"{}")], error="no_pending_transfer")
    story.case("offer_transfer", [o1], [OfferTransfer(did1, o2.address())], queries=_show(did1))
    story.case("invalid_offer_by_non_owner", [o2], [OfferTransfer(did1, o2.address())], error="not_owner")
    story.case("invalid_offer_to_the_owner", [o1], [OfferTransfer(did1, o1.address())], error="invalid_device")
    story.case("decommission_by_owner", [o1], [Decommission(did1)], queries=_show(did1))
    story.case("invalid_decommission_by_stranger", [thief], [Decommission(did1)], error="not_owner",
               queries=_show(did1))
    story.case("decommission_unowned_by_manufacturer", [maker], [Decommission(did3)], queries=_show(did3))
    story.send([o1], [OfferTransfer(did1, o2.address())])
    proof2 = fleet.prove(second, did1, o2)
    story.case("accept_transfer", [o2], [AcceptTransfer(did1, proof2)], queries=_show(did1))
    story.case("invalid_accept_by_third_party", [thief], [AcceptTransfer(did1, proof2)], error="not_owner")
    story.case("invalid_accept_with_garbage_proof", [o2], [AcceptTransfer(did1, b"{}")],
               error="binding_proof_rejected", queries=_show(did1))
    story.case("withdraw_offer", [o1], [OfferTransfer(did1, b"")], queries=_show(did1))
    story.send([maker], [Decommission(did3)])
    story.case("invalid_decommission_twice", [maker], [Decommission(did3)], error="decommissioned",
               queries=_show(did3))


# -- consent -------------------------------------------------------------------------------------

def consent_story(tmp: Path) -> Story:
    """A bound vehicle's data set, consents granted and revoked, access-log, records-root and gateway-root anchors."""
    from cityledger.modules.consent import GATEWAY_TYPE, VAULT_SERVICE_TYPE
    from cityledger.modules.devices import BindDevice
    from cityledger.modules.identity import compute_did

    gateway, vault, insurer = (PrivateKey(1, bytes([s]) * 32) for s in (0x63, 0x64, 0x65))
    dids = [did_entry(gateway, [GATEWAY_TYPE]), did_entry(vault, [VAULT_SERVICE_TYPE]), did_entry(insurer, [])]
    fleet = Fleet(tmp, "consent", dids, {"gateway": gateway, "vault": vault, "insurer": insurer})
    story = fleet.story
    d1, did1 = fleet.device(1)
    story.send([fleet.maker], [fleet.register(d1)])
    wallet = fleet.wallet()
    owner = fleet.registered(wallet, "owner1", did1)
    story.send([owner], [BindDevice(did1, fleet.prove(wallet, did1, owner))])
    cast = {"owner": owner, "device": did1, "gateway": (gateway, compute_did(gateway.signer(), b"")),
            "vault": (vault, compute_did(vault.signer(), b"")), "insurer": compute_did(insurer.signer(), b""),
            "stranger": story.keys["a0"]}
    data_set = _consent_data_sets(story, cast)
    _consent_grants(story, cast, data_set)
    _consent_anchors(story, cast, data_set)
    _consent_vault_keys(story, cast)
    return story


def _consent_data_sets(story: Story, cast: dict) -> str:
    """Registering a data set, and its refusals; returns the registered data set's id."""
    from cityledger.modules.consent import RegisterDataSet, compute_data_set_id

    owner, device, gateway = cast["owner"], cast["device"], cast["gateway"][1]
    message = RegisterDataSet("vehicle-telemetry-1", b"\x11" * 32, device, gateway, "")
    data_set = compute_data_set_id(owner.address(), device, "vehicle-telemetry-1", b"\x11" * 32)
    show = [("consent/data_set", {"id": data_set})]
    story.case("register_data_set", [owner], [message], queries=show)
    story.case("invalid_register_data_set_of_anothers_device", [cast["stranger"]], [message], error="not_owner")
    story.case("invalid_register_data_set_unknown_device", [owner],
               [RegisterDataSet("vehicle-telemetry-1", b"\x11" * 32, gateway, gateway, "")], error="unknown_device")
    story.case("invalid_register_data_set_gateway_not_accredited", [owner],
               [RegisterDataSet("vehicle-telemetry-1", b"\x11" * 32, device, cast["insurer"], "")],
               error="not_accredited")
    story.case("invalid_register_data_set_schema", [owner],
               [RegisterDataSet("Vehicle Telemetry", b"\x11" * 32, device, gateway, "")], error="invalid_data_set")
    story.send([owner], [message])
    story.case("invalid_register_data_set_twice", [owner], [message], error="already_registered", queries=show)
    return data_set


def _consent_grants(story: Story, cast: dict, data_set: str) -> None:
    """Granting and revoking consents, with the validity query before and after."""
    from cityledger.modules.consent import GrantConsent, RevokeConsent

    owner, insurer = cast["owner"], cast["insurer"]
    expiry = story.height() + 100
    grant = GrantConsent(data_set, insurer, "insurance-pricing", 1, 50, expiry)
    valid = ("consent/valid", {"data_set": data_set, "consumer": insurer, "purpose": "insurance-pricing",
                               "height": str(story.height() + 2)})
    listed = ("consent/consents", {"data_set": data_set})
    story.case("grant_consent", [owner], [grant], queries=[valid, listed, ("consent/consent", {"id": "1"})])
    story.case("invalid_grant_by_non_owner", [cast["stranger"]], [grant], error="not_owner")
    story.case("invalid_grant_unknown_data_set", [owner], [GrantConsent("ds-" + "0" * 32, insurer,
               "insurance-pricing", 1, 50, expiry)], error="unknown_data_set")
    story.case("invalid_grant_unknown_consumer", [owner], [GrantConsent(data_set, "did:city:nobody",
               "insurance-pricing", 1, 50, expiry)], error="unknown_consumer")
    story.case("invalid_grant_unknown_purpose", [owner], [GrantConsent(data_set, insurer, "marketing", 1, 50,
               expiry)], error="unknown_purpose")
    story.case("invalid_grant_expired", [owner], [GrantConsent(data_set, insurer, "insurance-pricing", 1, 1,
               story.height())], error="invalid_consent")
    story.send([owner], [grant])
    after = ("consent/valid", {"data_set": data_set, "consumer": insurer, "purpose": "insurance-pricing",
                               "height": str(story.height() + 1)})
    story.case("revoke_consent", [owner], [RevokeConsent(1)], queries=[after, ("consent/consent", {"id": "1"})])
    story.case("invalid_revoke_by_non_owner", [cast["stranger"]], [RevokeConsent(1)], error="not_owner")
    story.case("invalid_revoke_unknown_consent", [owner], [RevokeConsent(7)], error="unknown_consent")
    story.send([owner], [RevokeConsent(1)])
    story.case("invalid_revoke_twice", [owner], [RevokeConsent(1)], error="already_revoked")


def _consent_anchors(story: Story, cast: dict, data_set: str) -> None:
    """Access-log anchors (a linked chain, from an accredited vault service) and records roots."""
    from cityledger.modules.consent import ZERO_HEAD, AnchorAccessLog, AnchorRecordsRoot

    (vault, vault_did), (gateway, gateway_did) = cast["vault"], cast["gateway"]
    first = AnchorAccessLog(vault_did, data_set, b"\x21" * 32, 3, ZERO_HEAD)
    log = ("consent/access_log", {"service": vault_did, "subject": data_set})
    story.case("anchor_access_log", [vault], [first], queries=[log])
    story.case("invalid_anchor_access_log_unaccredited", [gateway],
               [AnchorAccessLog(gateway_did, data_set, b"\x21" * 32, 3, ZERO_HEAD)], error="not_accredited")
    story.send([vault], [first])
    story.case("invalid_anchor_access_log_skipping_a_head", [vault],
               [AnchorAccessLog(vault_did, data_set, b"\x23" * 32, 5, b"\x22" * 32)], error="broken_chain",
               queries=[log])
    story.case("anchor_access_log_next", [vault], [AnchorAccessLog(vault_did, data_set, b"\x22" * 32, 5,
               b"\x21" * 32)], queries=[log])
    roots = ("consent/records_roots", {"data_set": data_set})
    root = AnchorRecordsRoot(data_set, 1, b"\x31" * 32, 10)
    story.case("anchor_records_root_by_gateway", [gateway], [root], queries=[roots])
    story.case("anchor_records_root_by_owner", [cast["owner"]], [root], queries=[roots])
    story.case("invalid_anchor_records_root_by_stranger", [cast["stranger"]], [root], error="not_owner")
    story.send([gateway], [root])
    story.case("invalid_anchor_records_root_twice", [cast["owner"]], [root], error="invalid_anchor",
               queries=[roots])
    _consent_gateway_roots(story, cast)


def _consent_gateway_roots(story: Story, cast: dict) -> None:
    """A gateway's fleet-wide root (one per interval, increasing), and its refusals."""
    from cityledger.modules.consent import AnchorGatewayRoot

    (vault, vault_did), (gateway, gateway_did) = cast["vault"], cast["gateway"]
    roots = ("consent/gateway_roots", {"gateway": gateway_did})
    root = AnchorGatewayRoot(gateway_did, 29_000_000, b"\x41" * 32, 1500)
    story.case("anchor_gateway_root", [gateway], [root], queries=[roots])
    story.case("invalid_anchor_gateway_root_unaccredited", [vault],
               [AnchorGatewayRoot(vault_did, 29_000_000, b"\x41" * 32, 1500)], error="not_accredited")
    story.case("invalid_anchor_gateway_root_by_stranger", [cast["stranger"]], [root], error="not_controller")
    story.case("invalid_anchor_gateway_root_count_zero", [gateway],
               [AnchorGatewayRoot(gateway_did, 29_000_000, b"\x41" * 32, 0)], error="invalid_anchor")
    story.send([gateway], [root])
    story.case("invalid_anchor_gateway_root_twice", [gateway], [root], error="invalid_anchor", queries=[roots])
    story.case("anchor_gateway_root_next", [gateway],
               [AnchorGatewayRoot(gateway_did, 29_000_001, b"\x42" * 32, 1)], queries=[roots])


def _consent_vault_keys(story: Story, cast: dict) -> None:
    """An owner's vault key (registered, replaced), a consumer DID's, and the refusals."""
    from cityledger.core.types import address_to_str
    from cityledger.modules.consent import RegisterVaultKey

    owner, insurer = cast["owner"], cast["insurer"]
    (vault, _) = cast["vault"]
    account = address_to_str(owner.address())
    mine = ("consent/vault_key", {"subject": account})
    story.case("register_vault_key", [owner], [RegisterVaultKey(account, b"\x51" * 32)], queries=[mine])
    story.send([owner], [RegisterVaultKey(account, b"\x51" * 32)])
    story.case("register_vault_key_rotated", [owner], [RegisterVaultKey(account, b"\x52" * 32)], queries=[mine])
    story.case("invalid_register_vault_key_short", [owner], [RegisterVaultKey(account, b"\x51" * 31)],
               error="invalid_vault_key")
    story.case("invalid_register_vault_key_small_order", [owner], [RegisterVaultKey(account, b"\x01" + bytes(31))],
               error="invalid_vault_key")
    story.case("invalid_register_vault_key_of_anothers_did", [vault], [RegisterVaultKey(insurer, b"\x53" * 32)],
               error="not_controller")
    story.case("invalid_register_vault_key_of_anothers_account", [cast["stranger"]],
               [RegisterVaultKey(account, b"\x53" * 32)], error="not_owner")


# -- batteries -----------------------------------------------------------------------------------

def _passport_queries(*passports: str) -> list[tuple[str, dict]]:
    return [("batteries/passport", {"id": p}) for p in passports] + [("batteries/stages", {})]


class Workshop:
    """The batteries story's cast: one genesis organisation per role, two batteries and two vehicles."""

    def __init__(self, tmp: Path) -> None:
        from cityledger.modules.batteries import (
            ROLE_MANUFACTURER, ROLE_PASSPORT_SERVICE, ROLE_RECYCLER, ROLE_REMANUFACTURER, ROLE_REPAIRER, ROLE_SECOND_LIFE,
            ROLE_VEHICLE_MAKER)
        from cityledger.modules.identity import compute_did
        from cityledger.offchain.identity import DEVICE_MANUFACTURER

        members, accounts = members_and_accounts()
        keys = base_keys()
        roles = {"maker": (0x81, [DEVICE_MANUFACTURER, ROLE_MANUFACTURER]),
                 "carmaker": (0x82, [DEVICE_MANUFACTURER, ROLE_VEHICLE_MAKER]),
                 "repairer": (0x83, [ROLE_REPAIRER]), "second_life": (0x84, [ROLE_SECOND_LIFE]),
                 "remanufacturer": (0x85, [ROLE_REMANUFACTURER]), "recycler": (0x86, [ROLE_RECYCLER]),
                 "service": (0x88, [ROLE_PASSPORT_SERVICE])}
        self.org = {name: PrivateKey(1, bytes([seed]) * 32) for name, (seed, _) in roles.items()}
        keys.update(self.org)
        dids = [did_entry(self.org[name], accreditations) for name, (_, accreditations) in roles.items()]
        self.story = Story("batteries", genesis(members, accounts, dids=dids), keys, tmp)
        self.did = {name: compute_did(key.signer(), b"") for name, key in self.org.items()}
        self.devices: dict[str, str] = {}
        for name, kind, maker in (("battery1", "battery", "maker"), ("battery2", "battery", "maker"),
                                  ("battery3", "battery", "maker"), ("vehicle1", "vehicle", "carmaker"),
                                  ("vehicle2", "vehicle", "carmaker")):
            self._device(name, kind, maker)

    def _device(self, name: str, kind: str, maker: str) -> None:
        from cityledger.modules.devices import compute_device_did
        from cityledger.offchain.identity.devices import build_registration

        key = self.story.name(name, PrivateKey(1, bytes([0xB0 + len(self.devices)]) * 32))
        self.story.send([self.org[maker]], [build_registration(self.story.chain_id, kind, "Pack-1", key,
                                                               self.did[maker], self.org[maker])])
        self.devices[name] = compute_device_did(key.public_key)

    def act(self, org: str, message_type, *fields):
        """(keys, messages) for an organisation acting through its DID."""
        return [self.org[org]], [message_type(self.did[org], *fields)]

    def report(self, passport: str, battery: str, sequence: int, report_hash: bytes, signer: str | None = None):
        from cityledger.modules.batteries import ReportHealth, compute_report_payload
        from cityledger.offchain.identity.devices import sign_device_message

        signer = signer or battery
        payload = compute_report_payload(self.story.chain_id, passport, sequence, report_hash)
        signature = sign_device_message(self.story.keys[signer], self.devices[signer], payload)
        return [self.story.keys["a0"]], [ReportHealth(passport, sequence, report_hash, signature)]


def batteries_story(tmp: Path) -> Story:
    from cityledger.modules.batteries import Install, PlaceOnMarket, RegisterPassport

    shop = Workshop(tmp)
    story, devices = shop.story, shop.devices
    p1, p2 = "6f1c2b8e-9a54-4c1e-8d2f-0b7a3e5c9d11", "0c9e7f3a-2d41-4b6e-9f08-5a1d3c7e2b22"
    hashes = (b"\x01" * 32, b"\x02" * 32, b"\x03" * 32)
    register = shop.act("maker", RegisterPassport, p1, "DMC-0001", devices["battery1"], *hashes)
    story.case("register_passport", *register, queries=_passport_queries(p1))
    story.case("invalid_register_by_a_vehicle_maker",
               *shop.act("carmaker", RegisterPassport, p1, "DMC-0001", devices["battery1"], *hashes),
               error="wrong_role")
    story.case("invalid_register_a_vehicle_as_battery",
               *shop.act("maker", RegisterPassport, p1, "DMC-0001", devices["vehicle1"], *hashes),
               error="unknown_device")
    story.send(*register)
    story.send(*shop.act("maker", RegisterPassport, p2, "DMC-0002", devices["battery2"], *hashes))
    story.case("invalid_second_passport_for_a_battery",
               *shop.act("maker", RegisterPassport, "1d2e3f40-5a6b-4c7d-8e9f-a0b1c2d3e4f5", "DMC-0003",
                         devices["battery1"], *hashes), error="passport_exists")
    story.case("invalid_install_before_market", *shop.act("carmaker", Install, p1, devices["vehicle1"]),
               error="wrong_stage", queries=_passport_queries(p1))
    story.case("place_on_market", *shop.act("maker", PlaceOnMarket, p1), queries=_passport_queries(p1))
    for passport in (p1, p2):
        story.send(*shop.act("maker", PlaceOnMarket, passport))
    story.case("install", *shop.act("carmaker", Install, p1, devices["vehicle1"]),
               queries=_passport_queries(p1) + [("batteries/by_stage", {"stage": "in_service"}),
                                                ("batteries/by_stage", {"stage": "placed_on_market"})])
    story.send(*shop.act("carmaker", Install, p1, devices["vehicle1"]))
    story.send(*shop.act("carmaker", Install, p2, devices["vehicle2"]))
    _batteries_service(shop, p1, p2)
    _batteries_log(shop, p1)
    return story


def _batteries_service(shop: Workshop, p1: str, p2: str) -> None:
    """Reports, repair, documents, succession, collection and recycling, each with its refusals."""
    from cityledger.modules.batteries import (
        Collect, Materials, Recycle, Remanufacture, Repair, Repurpose, UpdateDocument)

    story = shop.story
    reports = [("batteries/reports", {"id": p1})]
    story.case("report_health", *shop.report(p1, "battery1", 1, b"\x0a" * 32), queries=reports)
    story.case("invalid_report_signed_by_another_battery", *shop.report(p1, "battery1", 1, b"\x0a" * 32,
                                                                          signer="battery2"),
               error="bad_report", queries=reports)
    story.send(*shop.report(p1, "battery1", 1, b"\x0a" * 32))
    story.case("invalid_report_out_of_sequence", *shop.report(p1, "battery1", 3, b"\x0b" * 32), error="bad_report")
    story.case("repair", *shop.act("repairer", Repair, p1), queries=_passport_queries(p1))
    story.case("invalid_repair_by_a_recycler", *shop.act("recycler", Repair, p1), error="wrong_role")
    story.case("update_document", *shop.act("maker", UpdateDocument, p1, "legitimate", 2, b"\x04" * 32),
               queries=_passport_queries(p1))
    story.case("invalid_update_document_version", *shop.act("maker", UpdateDocument, p1, "legitimate", 3,
                                                             b"\x04" * 32), error="document_version")
    successor = "7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c33"
    new_hashes = (b"\x05" * 32, b"\x06" * 32, b"\x07" * 32)
    story.case("repurpose", *shop.act("second_life", Repurpose, p1, successor, "DMC-0001", *new_hashes),
               queries=_passport_queries(p1, successor))
    story.case("remanufacture", *shop.act("remanufacturer", Remanufacture, p1, successor, "DMC-0001-R", *new_hashes),
               queries=_passport_queries(p1, successor))
    story.send(*shop.act("second_life", Repurpose, p1, successor, "DMC-0001", *new_hashes))
    story.case("invalid_repair_of_a_successor_not_in_service", *shop.act("repairer", Repair, successor),
               error="wrong_stage", queries=[("batteries/second_life", {}),
                                             ("batteries/by_stage", {"stage": "repurposed"})])
    story.case("invalid_repurpose_a_closed_passport",
               *shop.act("second_life", Repurpose, p1, "2b3c4d5e-6f70-4182-93a4-b5c6d7e8f944", "DMC-0009", *new_hashes),
               error="passport_closed")
    story.case("collect", *shop.act("recycler", Collect, p2),
               queries=_passport_queries(p2) + [("batteries/awaiting_recycling", {})])
    story.send(*shop.act("recycler", Collect, p2))
    masses = (400_000, 290_000, Materials(9_000, 20_000, 6_000, 30_000, 0), Materials(8_600, 19_500, 3_300, 28_800, 0))
    recycler = [("batteries/recycler", {"did": shop.did["recycler"]})]
    story.case("recycle", *shop.act("recycler", Recycle, "B-0001", [p2], *masses),
               queries=_passport_queries(p2) + recycler)
    story.case("invalid_recycle_more_than_contained", *shop.act(
        "recycler", Recycle, "B-0001", [p2], 400_000, 290_000, masses[2], Materials(9_001, 0, 0, 0, 0)),
        error="invalid_recycling")
    story.send(*shop.act("recycler", Recycle, "B-0001", [p2], *masses))
    story.case("invalid_event_after_recycling", *shop.act("recycler", Collect, p2), error="passport_closed",
               queries=_passport_queries(p2))


def _batteries_log(shop: Workshop, p1: str) -> None:
    """Anchoring the access log's head: the operator's chain of anchors (a closed passport's too), refusals."""
    from cityledger.modules.batteries import ZERO_HEAD, AnchorAccessLog

    story, log = shop.story, [("batteries/access_log", {"id": p1})]
    first = shop.act("maker", AnchorAccessLog, p1, b"\x41" * 32, 2, ZERO_HEAD)
    story.case("anchor_access_log", *first, queries=log)
    story.case("invalid_anchor_access_log_by_a_stranger",
               *shop.act("recycler", AnchorAccessLog, p1, b"\x41" * 32, 2, ZERO_HEAD), error="wrong_role")
    story.send(*first)
    story.case("invalid_anchor_access_log_skipping_a_head",
               *shop.act("maker", AnchorAccessLog, p1, b"\x43" * 32, 5, b"\x42" * 32), error="log_anchor", queries=log)
    story.case("invalid_anchor_access_log_count_not_growing",
               *shop.act("maker", AnchorAccessLog, p1, b"\x42" * 32, 2, b"\x41" * 32), error="log_anchor")
    story.case("anchor_access_log_next", *shop.act("maker", AnchorAccessLog, p1, b"\x42" * 32, 5, b"\x41" * 32),
               queries=log)
    _batteries_roots(shop)


def _batteries_roots(shop: Workshop) -> None:
    """A passport service's numbered roots: access-log heads and SoH report batches, and their refusals."""
    from cityledger.modules.batteries import AnchorLogRoot, AnchorReportRoot

    story, service = shop.story, shop.did["service"]
    roots = [("batteries/log_root", {"service": service})]
    first = shop.act("service", AnchorLogRoot, 1, b"\x51" * 32, 3)
    story.case("anchor_log_root", *first, queries=roots)
    story.case("invalid_anchor_log_root_not_accredited", *shop.act("maker", AnchorLogRoot, 1, b"\x51" * 32, 3),
               error="wrong_role")
    story.send(*first)
    story.case("invalid_anchor_log_root_replayed", *first, error="log_anchor", queries=roots)
    story.case("anchor_report_root", *shop.act("service", AnchorReportRoot, 1, b"\x61" * 32, 2000),
               queries=roots + [("batteries/report_root", {"service": service, "seq": "1"})])
    story.case("invalid_anchor_report_root_skipping", *shop.act("service", AnchorReportRoot, 2, b"\x61" * 32, 2000),
               error="log_anchor")


# -- payments ------------------------------------------------------------------------------------

def _payments_setup(fleet: Fleet):
    """A vehicle bound to owner1 and funded, a charger bound to its operator."""
    from cityledger.modules.bank import Transfer
    from cityledger.modules.devices import BindDevice

    story = fleet.story
    vehicle, vehicle_did = fleet.device(1)
    charger, charger_did = fleet.device(4)
    story.send([fleet.maker], [fleet.register(vehicle)])
    story.send([fleet.maker], [fleet.register(charger, kind="charger")])
    wallet = fleet.wallet()
    owner = fleet.registered(wallet, "owner1", vehicle_did)
    story.send([owner], [BindDevice(vehicle_did, fleet.prove(wallet, vehicle_did, owner))])
    wallet = fleet.wallet()
    operator = fleet.registered(wallet, "operator", charger_did, DEVICE_REGISTRATION_TYPE.name)
    story.send([operator], [BindDevice(charger_did, fleet.prove(wallet, charger_did, operator))])
    for account in (vehicle, owner, operator):
        story.send([story.keys["a0"]], [Transfer(account.address(), 1_000_000)])
    return vehicle, vehicle_did, owner, operator, charger_did


def payments_story(tmp: Path) -> Story:
    from cityledger.modules.payments import DeclareCounterparty, OpenChannel, SetPolicy

    fleet = Fleet(tmp, "payments")
    story = fleet.story
    vehicle, did, owner, operator, charger_did = _payments_setup(fleet)
    a0, a1, a2 = (story.keys[n] for n in ("a0", "a1", "a2"))
    policy = ("payments/policy", {"device": did})
    story.case("declare_counterparty", [operator], [DeclareCounterparty("charger", charger_did)],
               queries=[("payments/counterparty", {"address": address_to_str(operator.address())})])
    story.case("invalid_declare_a_vehicle_as_charger", [owner], [DeclareCounterparty("charger", did)],
               error="invalid_payment")
    story.send([operator], [DeclareCounterparty("charger", charger_did)])
    open_to_operator = OpenChannel(operator.address(), 500, 3, vehicle.public_key)
    story.case("invalid_device_pays_without_policy", [vehicle], [open_to_operator], error="no_policy",
               queries=[balance(vehicle)])
    set_policy = SetPolicy(did, 1_000, 800, ["charger"], [a2.address()], story.height() + 1_000)
    story.case("set_policy", [owner], [set_policy], queries=[policy])
    story.case("invalid_set_policy_by_stranger", [a1], [set_policy], error="not_device_owner")
    story.send([owner], [set_policy])
    story.case("channel_open_by_device", [vehicle], [open_to_operator],
               queries=[("payments/channel", {"id": "1"}), balance(vehicle), ("payments/locked", {})])
    story.send([vehicle], [open_to_operator])
    _payments_device_refusals(story, vehicle, did, owner, operator, a1, a2)
    _payments_channel(story, vehicle, operator)
    _payments_close_and_escrow(story, a0, a1)
    return story


def _payments_device_refusals(story: Story, vehicle, did, owner, operator, a1, a2) -> None:
    """What a device's policy refuses: caps per counterparty and per day, other payees, a freeze."""
    from cityledger.modules.payments import FreezeDevice, LockEscrow, OpenChannel, TopUpChannel

    timeout = story.height() + 100
    story.case("invalid_device_over_counterparty_cap", [vehicle], [TopUpChannel(1, 400)], error="over_counterparty_cap")
    story.case("invalid_device_over_daily_cap", [vehicle], [LockEscrow(a2.address(), 600, timeout)],
               error="over_daily_cap")
    story.case("invalid_device_pays_a_counterparty_not_allowed", [vehicle], [LockEscrow(a1.address(), 10, timeout)],
               error="counterparty_not_allowed")
    story.case("channel_top_up_by_device", [vehicle], [TopUpChannel(1, 100)],
               queries=[("payments/channel", {"id": "1"})])
    story.send([vehicle], [TopUpChannel(1, 100)])
    story.case("freeze_device", [owner], [FreezeDevice(did)], queries=[("payments/policy", {"device": did})])
    story.send([owner], [FreezeDevice(did)])
    story.case("invalid_frozen_device_pays", [vehicle], [OpenChannel(operator.address(), 5, 3, vehicle.public_key)],
               error="device_frozen")


def _payments_channel(story: Story, vehicle, operator) -> None:
    """Vouchers on the vehicle's channel: redeem, the cheats, close, replay after settlement."""
    from cityledger.modules.payments import CloseChannel, RedeemVoucher, sign_voucher

    def voucher(amount: int, nonce: int, chain_id: str = story.chain_id) -> tuple[int, int, int, bytes]:
        return 1, amount, nonce, sign_voucher(vehicle, chain_id, 1, amount, nonce)

    channel = ("payments/channel", {"id": "1"})
    story.case("channel_redeem", [operator], [RedeemVoucher(*voucher(200, 1))], queries=[channel, balance(operator)])
    story.send([operator], [RedeemVoucher(*voucher(200, 1))])
    story.case("invalid_redeem_old_voucher", [operator], [RedeemVoucher(*voucher(100, 1))], error="stale_voucher")
    story.case("invalid_redeem_over_deposit", [operator], [RedeemVoucher(*voucher(601, 2))], error="over_deposit")
    story.case("invalid_redeem_voucher_of_another_chain", [operator], [RedeemVoucher(*voucher(300, 2, "other-1"))],
               error="bad_voucher_signature")
    story.case("channel_close_by_payee", [operator], [CloseChannel(*voucher(300, 2))],
               queries=[channel, balance(operator), balance(vehicle), ("payments/locked", {})])
    story.send([operator], [CloseChannel(*voucher(300, 2))])
    story.case("invalid_redeem_after_settlement", [operator], [RedeemVoucher(*voucher(400, 3))],
               error="channel_settled")


def _payments_close_and_escrow(story: Story, a0, a1) -> None:
    """The payer's start_close and finalize after the window; escrow release and refund."""
    from cityledger.modules.bank import Transfer
    from cityledger.modules.payments import FinalizeChannel, LockEscrow, OpenChannel, RefundEscrow, ReleaseEscrow
    from cityledger.modules.payments import StartClose

    story.send([a0], [OpenChannel(a1.address(), 1_000, 2, a0.public_key)])
    story.case("channel_start_close", [a0], [StartClose(2)], queries=[("payments/channel", {"id": "2"})])
    story.send([a0], [StartClose(2)])
    story.case("invalid_finalize_in_the_window", [a0], [FinalizeChannel(2)], error="too_early")
    story.send([a1], [Transfer(a1.address(), 1)])
    story.case("channel_finalize", [a0], [FinalizeChannel(2)], queries=[("payments/channel", {"id": "2"}), balance(a0)])
    lock = LockEscrow(a1.address(), 100, story.height() + 3)
    story.case("escrow_lock", [a0], [lock], queries=[("payments/escrow", {"id": "1"}), ("payments/locked", {})])
    story.send([a0], [lock])
    story.case("escrow_release", [a0], [ReleaseEscrow(1)], queries=[balance(a1)])
    story.case("invalid_escrow_release_by_payee", [a1], [ReleaseEscrow(1)], error="not_party")
    story.case("invalid_escrow_refund_before_timeout", [a0], [RefundEscrow(1)], error="too_early")
    story.send([a1], [Transfer(a1.address(), 1)])
    story.send([a1], [Transfer(a1.address(), 1)])
    story.case("escrow_refund", [a0], [RefundEscrow(1)], queries=[balance(a0), ("payments/locked", {})])


# -- mobility ----------------------------------------------------------------------------------

def mobility_story(tmp: Path) -> Story:
    """A programme, tickets from the transport office, and claims with stored proofs (re-signed for
    this chain): paid, replayed, over-scored, forged, below threshold, capped, after the budget."""
    import msgspec

    from mobility_fixtures import OFFICE_SECRET, OTHER_PSEUDONYM, PSEUDONYM, stored_claims
    from cityledger.modules.identity import compute_did
    from cityledger.modules.mobility import CreateProgramme, FundProgramme, WithdrawProgramme, sign_commitment
    from cityledger.offchain.mobility.rewards import issue_enrollment

    members, accounts = members_and_accounts()
    office = fixed_key(50)
    story = Story("mobility", genesis(members, accounts, dids=[did_entry(office, ["vehicle-registration"])]),
                  base_keys() | {"office": office, "pseudonym": PSEUDONYM, "other_pseudonym": OTHER_PSEUDONYM}, tmp)
    office_did = compute_did(office.signer(), b"")
    sponsor, driver, other = (story.keys[n] for n in ("a0", "a1", "a2"))
    programme = ("mobility/programme", {"id": "1"})
    expiry = story.height() + 12
    create = CreateProgramme("driving-score-v1", 1_000, 60, 100, 10, 500, 500, 1_000, expiry, office_did)
    story.case("create_programme", [sponsor], [create], queries=[programme, balance(sponsor)])
    story.case("invalid_programme_unaccredited_issuer", [sponsor],
               [msgspec.structs.replace(create, issuer=compute_did(sponsor.signer(), b""))], error="invalid_mobility")
    story.send([sponsor], [create])
    story.case("fund_programme", [sponsor], [FundProgramme(1, 300)], queries=[programme])
    story.case("invalid_fund_by_stranger", [driver], [FundProgramme(1, 300)], error="not_sponsor")
    story.case("invalid_withdraw_running_programme", [sponsor], [WithdrawProgramme(1)], error="programme_running")

    def ticket(pseudonym, vehicle: str, account=driver):
        return issue_enrollment(office, OFFICE_SECRET, story.chain_id, 1, (story.height() + 1) // 1_000, vehicle,
                                pseudonym.public_key, account.address())

    story.case("enroll", [driver], [ticket(PSEUDONYM, "car-1")],
               queries=[("mobility/enrollment", {"programme": "1", "period": "0",
                                                 "account": address_to_str(driver.address())})])
    story.case("invalid_enroll_forged_ticket", [driver],
               [msgspec.structs.replace(ticket(PSEUDONYM, "car-1"), pseudonym_key=OTHER_PSEUDONYM.public_key)],
               error="bad_enrollment_ticket")
    story.send([driver], [ticket(PSEUDONYM, "car-1")])
    story.case("invalid_enroll_ticket_of_another_account", [other], [ticket(OTHER_PSEUDONYM, "car-2")],
               error="bad_enrollment_ticket")
    story.case("invalid_second_enrollment_of_a_vehicle", [other], [ticket(OTHER_PSEUDONYM, "car-1", other)],
               error="vehicle_already_enrolled")
    _mobility_claims(story, driver, other, stored_claims(), sign_commitment)
    from cityledger.modules.bank import Transfer

    while story.height() <= expiry:
        story.send([other], [Transfer(driver.address(), 1)])
    story.case("invalid_fund_after_expiry", [sponsor], [FundProgramme(1, 5)], error="programme_expired")
    story.case("withdraw_programme", [sponsor], [WithdrawProgramme(1)], queries=[programme, balance(sponsor)])
    return story


def _mobility_claims(story: Story, driver, other, claims, sign_commitment) -> None:
    """Claims: paid once, then every fraud refused."""
    import msgspec

    from mobility_fixtures import OTHER_PSEUDONYM, PSEUDONYM

    def signed(claim, key=PSEUDONYM):
        signature = sign_commitment(key, story.chain_id, 1, claim.trip_id, claim.commitment)
        return msgspec.structs.replace(claim, commitment_signature=signature)

    good, fair, poor = (signed(claims[name]) for name in ("good", "fair", "poor"))
    paid = [("mobility/programme", {"id": "1"}), balance(driver)]
    story.case("claim_paid", [driver], [fair], queries=paid)
    story.case("invalid_claim_score_above_proven", [driver],
               [msgspec.structs.replace(fair, score_fixed=fair.score_fixed + 128)], error="proof_rejected")
    story.case("invalid_claim_proof_of_another_commitment", [driver],
               [msgspec.structs.replace(good, proof=fair.proof)], error="proof_rejected")
    story.case("invalid_claim_signed_by_another_pseudonym", [driver], [signed(claims["good"], OTHER_PSEUDONYM)],
               error="bad_commitment_signature")
    story.case("invalid_claim_not_enrolled", [other], [fair], error="not_enrolled")
    story.case("invalid_claim_below_threshold", [driver], [poor], error="score_below_threshold")
    story.send([driver], [fair])
    story.case("invalid_claim_replayed", [driver], [fair], error="already_claimed", queries=paid)
    story.case("invalid_claim_over_enrollee_cap", [driver], [good], error="enrollee_cap_reached")


STORIES = {"bank": bank_story, "batteries": batteries_story, "consent": consent_story, "devices": devices_story,
           "governance": governance_story, "identity": identity_story, "mobility": mobility_story,
           "payments": payments_story}


def main(argv: list[str]) -> int:
    modules = argv or list(MODULE_NAMES)
    with tempfile.TemporaryDirectory() as scratch:
        for module in modules:
            folder = Path(scratch) / module
            folder.mkdir()
            story = STORIES[module](folder)
            out = VECTORS / f"{module}.json"
            out.write_text(json.dumps(story.document(), indent=1, sort_keys=True) + "\n")
            print(f"wrote {out}: {len(story.cases)} cases, {len(story.history)} history steps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
