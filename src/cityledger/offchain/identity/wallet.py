"""A resident's wallet: link secret, credentials in an encrypted local store, pseudonymous accounts.

Residents have no DID. What ties their credentials together is the AnonCreds link secret, which
never leaves the wallet; what they show the ledger are pseudonymous accounts, each derived from the
wallet's master seed for one purpose, so two accounts (or two presentations) cannot be linked
through the ledger.

The store is one sealed file (sealed.py): b"CLW1" || salt (16) || SecretBox(JSON), the key derived
from the passphrase with Argon2id, replaced atomically on every change.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any, Mapping

import anoncreds

from ...core.keys import SCHEME_ED25519, PrivateKey
from .issuer import REQUEST_TYPE
from .ledger import LedgerReader
from .resolve import get_cred_def_json, get_rev_reg_def_json, get_schema_json, get_status_list_json
from .sealed import SealError, derive_key, new_salt, read_sealed, write_sealed
from .tails import TailsFetcher

DOMAIN_ACCOUNT = b"cityledger/wallet/account/1\x00"
LINK_SECRET_ID = "default"
MAX_CREDENTIALS = 1_000


class WalletError(ValueError):
    """The wallet cannot do what was asked (wrong passphrase, no matching credential, ...)."""


class Wallet:
    """A holder's wallet; every method takes and returns JSON-friendly values."""

    def __init__(self, data: dict[str, Any], path: Path | None = None, key: bytes | None = None,
                 tails: TailsFetcher | None = None) -> None:
        self._data = data
        self._path = path
        self._key = key
        self._salt = b""
        self.tails = tails or TailsFetcher()
        # (registry, index) -> (status list timestamp, revocation state, that status list), for this session.
        self._witnesses: dict[tuple[str, int], tuple[int, Any, str]] = {}

    # -- the encrypted store ---------------------------------------------------------------------

    @staticmethod
    def _fresh() -> dict[str, Any]:
        return {"version": 1, "seed": os.urandom(32).hex(), "link_secret": anoncreds.create_link_secret(),
                "credentials": {}, "pending": {}, "accounts": {}}

    @classmethod
    def in_memory(cls, tails: TailsFetcher | None = None) -> "Wallet":
        """A wallet that is never written to disk (simulations, tests)."""
        return cls(cls._fresh(), tails=tails)

    @classmethod
    def create(cls, path: Path | str, passphrase: str, tails: TailsFetcher | None = None) -> "Wallet":
        """A new wallet file, encrypted under the passphrase."""
        path = Path(path)
        if path.exists():
            raise WalletError(f"path: {path} already exists")
        wallet = cls(cls._fresh(), path, tails=tails)
        wallet._salt = new_salt()
        wallet._key = derive_key(passphrase, wallet._salt)
        wallet.save()
        return wallet

    @classmethod
    def open(cls, path: Path | str, passphrase: str, tails: TailsFetcher | None = None) -> "Wallet":
        """Open a wallet file; raise WalletError on a wrong passphrase or a damaged file."""
        try:
            data, key, salt = read_sealed(Path(path), passphrase)
        except SealError as exc:
            raise WalletError(str(exc)) from None
        wallet = cls(data, Path(path), key, tails)
        wallet._salt = salt
        return wallet

    def save(self) -> None:
        """Write the encrypted store (no-op for an in-memory wallet)."""
        if self._path is not None and self._key is not None:
            write_sealed(self._path, self._key, self._salt, self._data)

    # -- pseudonymous accounts -------------------------------------------------------------------

    def account(self, purpose: str, index: int = 0) -> PrivateKey:
        """The account key for one purpose (e.g. 'vehicle', 'payments'); unlinkable to the others."""
        label = f"{purpose}/{index}"
        seed = hmac.new(bytes.fromhex(self._data["seed"]), DOMAIN_ACCOUNT + label.encode(), hashlib.sha256).digest()
        if label not in self._data["accounts"]:
            self._data["accounts"][label] = {"purpose": purpose, "index": index}
            self.save()
        return PrivateKey(SCHEME_ED25519, seed)

    def accounts(self) -> list[tuple[str, int]]:
        """(purpose, index) of every account this wallet has derived so far, sorted."""
        return sorted((item["purpose"], item["index"]) for item in self._data["accounts"].values())

    # -- issuance --------------------------------------------------------------------------------

    def request_credential(self, offer: Mapping[str, Any], ledger: LedgerReader) -> dict[str, Any]:
        """Answer an issuer's offer with a credential request (step 2 of issuance)."""
        body = offer["offer"]
        state = ledger.state_at(ledger.height())
        cred_def = get_cred_def_json(state, body["cred_def_id"])
        request, metadata = anoncreds.CredentialRequest.create(
            os.urandom(16).hex(), None, json.dumps(cred_def), self._data["link_secret"], LINK_SECRET_ID,
            json.dumps(body))
        self._data["pending"][offer["thread"]] = {"metadata": metadata.to_dict(), "type": offer["credential_type"]}
        self.save()
        return {"type": REQUEST_TYPE, "thread": offer["thread"], "request": request.to_dict()}

    def store_credential(self, message: Mapping[str, Any], ledger: LedgerReader) -> str:
        """Check and keep an issued credential (step 4); return its local id."""
        pending = self._data["pending"].pop(message["thread"], None)
        if pending is None:
            raise WalletError(f"thread: no pending request {message['thread']!r}")
        if len(self._data["credentials"]) >= MAX_CREDENTIALS:
            raise WalletError(f"credentials: the wallet holds its maximum of {MAX_CREDENTIALS}")
        raw = message["credential"]
        state = ledger.state_at(ledger.height())
        cred_def = get_cred_def_json(state, raw["cred_def_id"])
        rev_reg_def = get_rev_reg_def_json(state, raw["rev_reg_id"]) if raw.get("rev_reg_id") else None
        try:
            credential = anoncreds.Credential.load(json.dumps(raw)).process(
                json.dumps(pending["metadata"]), self._data["link_secret"], json.dumps(cred_def),
                json.dumps(rev_reg_def) if rev_reg_def else None)
        except anoncreds.AnoncredsError as exc:
            raise WalletError(f"credential: does not verify against the anchored definition ({exc})") from None
        local_id = hashlib.sha256(message["thread"].encode()).hexdigest()[:16]
        self._data["credentials"][local_id] = {"type": pending["type"], "credential": credential.to_dict()}
        self.save()
        return local_id

    def credentials(self) -> dict[str, dict[str, Any]]:
        """Local id -> {'type', 'attributes'} of every held credential (for the holder's eyes)."""
        out = {}
        for cid, item in self._data["credentials"].items():
            values = item["credential"]["values"]
            out[cid] = {"type": item["type"], "attributes": {name: value["raw"] for name, value in values.items()}}
        return out

    def revocation_refs(self) -> dict[str, tuple[str, int] | None]:
        """Local id -> (revocation registry id, index) of every held credential; None if it cannot be revoked."""
        out: dict[str, tuple[str, int] | None] = {}
        for cid, item in self._data["credentials"].items():
            raw = item["credential"]
            index = anoncreds.Credential.load(json.dumps(raw)).rev_reg_index if raw.get("rev_reg_id") else None
            out[cid] = None if index is None else (raw["rev_reg_id"], index)
        return out

    def remove_credential(self, local_id: str) -> None:
        """Forget a credential."""
        self._data["credentials"].pop(local_id, None)
        self.save()

    # -- presentation ----------------------------------------------------------------------------

    def present(self, request: Mapping[str, Any], ledger: LedgerReader) -> str:
        """A presentation answering a verifier's request, proven against the ledger at its height."""
        height = int(request.get("non_revoked", {}).get("to", ledger.height()))
        state = ledger.state_at(height)
        chosen = self._choose(request)
        present = anoncreds.PresentCredentials()
        schemas, cred_defs, loaded = {}, {}, {}
        for referent, (local_id, is_predicate) in sorted(chosen.items()):
            raw = self._data["credentials"][local_id]["credential"]
            if local_id not in loaded:
                credential = anoncreds.Credential.load(json.dumps(raw))
                loaded[local_id] = (credential, *self._revocation_state(state, credential, raw,
                                                                        "non_revoked" in request))
            credential, timestamp, rev_state = loaded[local_id]
            if is_predicate:
                present.add_predicates(credential, referent, timestamp=timestamp, rev_state=rev_state)
            else:
                present.add_attributes(credential, referent, reveal=True, timestamp=timestamp, rev_state=rev_state)
            schemas[raw["schema_id"]] = json.dumps(get_schema_json(state, raw["schema_id"]))
            cred_defs[raw["cred_def_id"]] = json.dumps(get_cred_def_json(state, raw["cred_def_id"]))
        try:
            presentation = anoncreds.Presentation.create(json.dumps(request), present, {}, self._data["link_secret"],
                                                         schemas, cred_defs)
        except anoncreds.AnoncredsError as exc:
            raise WalletError(f"presentation: cannot satisfy the request ({exc})") from None
        return presentation.to_json()

    def _revocation_state(self, state, credential: Any, raw: Mapping[str, Any],
                          wanted: bool) -> tuple[int | None, Any]:
        if not wanted or not raw.get("rev_reg_id"):
            return None, None
        definition = get_rev_reg_def_json(state, raw["rev_reg_id"])
        status = get_status_list_json(state, raw["rev_reg_id"])
        tails_path = self.tails.get(definition["value"]["tailsLocation"], definition["value"]["tailsHash"])
        index = credential.rev_reg_index
        key = (raw["rev_reg_id"], index)
        cached = self._witnesses.get(key)
        if cached is not None and cached[0] == status["timestamp"]:
            return status["timestamp"], cached[1]
        if cached is not None and cached[0] < status["timestamp"]:
            # Only the indexes revoked since the held list move the witness: milliseconds, at any size.
            rev_state = anoncreds.CredentialRevocationState.load(cached[1].to_json())
            rev_state.update(json.dumps(definition), json.dumps(status), index, tails_path, cached[2])
        else:
            # The witness over every index of the registry: 0.8 s for the city's 131,072.
            rev_state = anoncreds.CredentialRevocationState.create(json.dumps(definition), json.dumps(status),
                                                                   index, tails_path)
        self._witnesses[key] = (status["timestamp"], rev_state, json.dumps(status))
        return status["timestamp"], rev_state

    def _choose(self, request: Mapping[str, Any]) -> dict[str, tuple[str, bool]]:
        """For each referent, a held credential that has the attribute(s) and meets the restrictions."""
        wanted = [(ref, spec, False) for ref, spec in request.get("requested_attributes", {}).items()]
        wanted += [(ref, spec, True) for ref, spec in request.get("requested_predicates", {}).items()]
        chosen = {}
        for referent, spec, is_predicate in wanted:
            names = spec.get("names") or [spec.get("name")]
            match = next((cid for cid, item in sorted(self._data["credentials"].items())
                          if all(n in item["credential"]["values"] for n in names)
                          and _meets(item["credential"], spec.get("restrictions"))), None)
            if match is None:
                raise WalletError(f"{referent}: no held credential has {names} under the requested restrictions")
            chosen[referent] = (match, is_predicate)
        return chosen


def _meets(credential: Mapping[str, Any], restrictions: Any) -> bool:
    """True if a credential meets any one of the restrictions (each a conjunction of equalities).

    Besides identifiers, a restriction may pin an attribute's value ("attr::<name>::value") or
    require its presence ("attr::<name>::marker"), as AnonCreds defines.
    """
    if not restrictions:
        return True
    facts = _facts(credential)
    for name, item in credential["values"].items():
        facts[f"attr::{name}::value"] = item["raw"]
        facts[f"attr::{name}::marker"] = "1"
    return any(all(facts.get(k) == v for k, v in r.items()) for r in restrictions)


def _facts(credential: Mapping[str, Any]) -> dict[str, str]:
    schema_id, cred_def_id = credential["schema_id"], credential["cred_def_id"]
    schema_issuer, _, _, _, name, version = schema_id.rsplit("/", 5)
    return {"schema_id": schema_id, "cred_def_id": cred_def_id, "schema_name": name, "schema_version": version,
            "schema_issuer_did": schema_issuer, "schema_issuer_id": schema_issuer,
            "issuer_did": cred_def_id.split("/", 1)[0], "issuer_id": cred_def_id.split("/", 1)[0]}

