"""Shared set-up for the identity, devices and privacy tests (this module holds no tests).

`City` is a chain on a real store with three consortium members (2 of 3 approve), and helpers
to create offices, accredit them by governance vote, and give residents wallets. Credential
definitions take seconds to generate (safe primes), so `fast_cred_defs` reuses one key set per
attribute list for the whole session; each office still gets its own identifiers.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

import anoncreds

from helpers import CHAIN_ID, make_chain
from cityledger.core.encoding import encode
from cityledger.core.keys import PrivateKey
from cityledger.core.types import address_to_str
from cityledger.modules.governance import SubmitProposal, Vote
from cityledger.modules.governance.handlers import get_proposal
from cityledger.modules.governance.keys import NEXT_PROPOSAL_ID_KEY
from cityledger.modules.identity import AccreditIssuer, WithdrawAccreditation
from cityledger.offchain.identity import (
    RESIDENT_ID,
    RESIDENT_ID_TYPE,
    VEHICLE_REGISTRATION,
    VEHICLE_REGISTRATION_TYPE,
    IssuerService,
    LocalLedger,
    TailsFetcher,
    TailsStore,
    Wallet,
)

TODAY = 20250615
ALICE = {"name": "Alice Example", "birth_date": 19900101, "district": "Nordstadt", "resident_since": 20200101,
         "id_number": "ID-0000001"}
MINOR = {"name": "Bob Young", "birth_date": 20100301, "district": "Nordstadt", "resident_since": 20100301,
         "id_number": "ID-0000002"}
NEWCOMER = {"name": "Carla New", "birth_date": 19850505, "district": "Altstadt", "resident_since": 20250101,
            "id_number": "ID-0000003"}

_REAL_CREATE = anoncreds.CredentialDefinition.create
_MATERIAL: dict[tuple, tuple[dict, Any, Any]] = {}


def _cached_create(schema_id, schema, issuer_id, tag, signature_type, *, support_revocation=False):
    body = schema.to_dict() if hasattr(schema, "to_dict") else json.loads(schema)
    key = (tuple(body["attrNames"]), support_revocation)
    if key not in _MATERIAL:
        public, private, proof = _REAL_CREATE(schema_id, schema, issuer_id, tag, signature_type,
                                              support_revocation=support_revocation)
        _MATERIAL[key] = (public.to_dict(), private, proof)
    public, private, proof = _MATERIAL[key]
    relabelled = dict(public, schemaId=schema_id, issuerId=issuer_id, tag=tag)
    return anoncreds.CredentialDefinition.load(json.dumps(relabelled)), private, proof


@contextlib.contextmanager
def fast_cred_defs() -> Iterator[None]:
    """Reuse credential-definition keys across offices (tests only: real offices never share keys)."""
    anoncreds.CredentialDefinition.create = _cached_create
    try:
        yield
    finally:
        anoncreds.CredentialDefinition.create = _REAL_CREATE


class City:
    """A test city: ledger, consortium, offices, wallets."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.chain = make_chain(tmp_path)
        self.ledger = LocalLedger(self.chain.app)
        self.chain_id = CHAIN_ID
        self.members = self.chain.members
        self.offices: dict[str, IssuerService] = {}

    # -- governance ------------------------------------------------------------------------------

    def vote_through(self, action: Any) -> str:
        """Propose an action and have a second member approve it; return the proposal's status."""
        raw = self.ledger.store.get(NEXT_PROPOSAL_ID_KEY)
        proposal_id = 1 if raw is None else int.from_bytes(raw, "big")
        self.ledger.send([self.members[0]], [SubmitProposal(encode(action))]).raise_for_error()
        self.ledger.send([self.members[1]], [Vote(proposal_id, True)]).raise_for_error()
        return get_proposal(self.ledger.store, proposal_id).status

    def accredit(self, did: str, credential_type: str) -> str:
        return self.vote_through(AccreditIssuer(did, credential_type))

    def withdraw(self, did: str, credential_type: str) -> str:
        return self.vote_through(WithdrawAccreditation(did, credential_type))

    # -- offices and residents -------------------------------------------------------------------

    def office(self, name: str, seed: int, credential_type=None, accredit: bool = True) -> IssuerService:
        """A registered office DID, accredited and publishing `credential_type` if given."""
        tails = TailsStore(self.tmp_path / f"tails-{name}", f"https://{name}.city.example/tails")
        office = IssuerService(self.ledger, [PrivateKey(1, bytes([seed]) * 32)], tails)
        office.register()
        if credential_type is not None:
            if accredit:
                assert self.accredit(office.did, credential_type.name) == "executed"
            with fast_cred_defs():
                office.publish(credential_type)
        self.offices[name] = office
        return office

    def id_office(self) -> IssuerService:
        return self.offices.get("id") or self.office("id", 0x41, RESIDENT_ID_TYPE)

    def transport_office(self) -> IssuerService:
        return self.offices.get("transport") or self.office("transport", 0x42, VEHICLE_REGISTRATION_TYPE)

    def fetch_tails(self, url: str) -> bytes:
        """The tails transport: route a URL to the office that serves it."""
        for office in self.offices.values():
            if url.startswith(office.tails.base_url):
                return office.serve_tails(url[len(office.tails.base_url):])
        raise LookupError(url)

    def wallet(self) -> Wallet:
        return Wallet.in_memory(TailsFetcher(self.tmp_path / "tails-cache", transport=self.fetch_tails))

    def issue(self, office: IssuerService, wallet: Wallet, credential_type: str, values: dict, reference: str) -> str:
        """Run the offer / request / issue / store exchange; return the wallet's credential id."""
        offer = office.offer(credential_type)
        request = wallet.request_credential(offer, self.ledger)
        return wallet.store_credential(office.issue(request, values, reference), self.ledger)

    def resident(self, values: dict = ALICE) -> Wallet:
        """A wallet holding a Resident ID with these values."""
        wallet = self.wallet()
        self.issue(self.id_office(), wallet, RESIDENT_ID, values, values["id_number"])
        return wallet

    def registration(self, wallet: Wallet, device_did: str, owner: PrivateKey, reference: str) -> str:
        """Give a wallet a vehicle-registration credential for a device and an owner account."""
        values = {"device_did": device_did, "owner_account": address_to_str(owner.address()),
                  "registered_on": TODAY}
        return self.issue(self.transport_office(), wallet, VEHICLE_REGISTRATION, values, reference)
