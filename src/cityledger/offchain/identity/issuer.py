"""The issuer service of an accredited office (the city's ID office, the transport office).

It owns an organisation DID, publishes its credential types on the ledger (schema, credential
definition, revocation registry with the tails file's hash, initial status list), answers
credential requests and revokes. The personal data it certifies is passed in per issuance and is
never written to the ledger; the office keeps only which registry index it gave to which of its
own references (e.g. an ID-card number), so that it can revoke.

An offer may be pre-authorised: the office checks the person, then makes an offer carrying the
values it will certify and its reference; the holder redeems it with a credential request, from
anywhere, once (the offer's nonce is the one-time capability). Otherwise the office passes the
values when it answers the request.

A presentation names its revocation registry, so a registry's holders are each holder's anonymity
set: registries are sized for the city (the hosted offices' default, 131,072), each credential
gets an index drawn at random among the registry's free ones, and the next registry is created in
a background thread once the current one is PREPARE_NEXT_AT_PERCENT full, never inside a request.
Publishing creates the first one, also outside the service's lock (a hosted office runs publish in
a background thread, node/issuers.py); its credential definition is kept (and sealed through the
`checkpoint` hook) before it is anchored, so a retry reuses it.

Every method takes and returns JSON-friendly values, so the REST layer is a thin wrapper. One
lock serialises the service's changes, so threads (a web server's workers) may share it.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

import anoncreds

from ...core.keys import PrivateKey, Signer
from ...modules.identity import (
    PURPOSE_ASSERTION,
    PURPOSE_AUTHENTICATION,
    AnchorCredDef,
    AnchorRevRegDef,
    AnchorSchema,
    CreateDid,
    Service,
    UpdateStatusList,
    VerificationKey,
    compute_cred_def_id,
    compute_did,
    compute_rev_reg_def_id,
    compute_revoked_bits,
    compute_schema_id,
    get_cred_def,
    get_did,
    get_rev_reg_def,
    get_schema,
    get_status_list,
)
from ...modules.identity.anchors import compute_status_list_json, is_revoked
from ...modules.identity.validation import canonical_json
from .ledger import LedgerReader, TxOutcome, TxSender
from .sealed import derive_key, new_salt, read_sealed, write_sealed
from .registries import Published, Registry, compute_ids, export_published, import_published
from .tails import TailsStore
from .types import CredentialType

OFFER_TYPE = "identity/1.0/credential-offer"
REQUEST_TYPE = "identity/1.0/credential-request"
CREDENTIAL_TYPE = "identity/1.0/credential"
# Pending offers live in the sealed state, rewritten on each change, so they and their values are
# bounded: past MAX_PENDING_OFFERS the oldest pending offer is withdrawn.
MAX_PENDING_OFFERS = 4_096
MAX_OFFER_VALUES = 16
MAX_VALUE_CHARS = 256
MAX_OFFER_VALUES_BYTES = 2_048  # all of one offer's values, as the sealed state stores them (JSON)
MAX_REFERENCE_CHARS = 128
MAX_REFERENCES = 1_000
# The next registry of a type is prepared (in the background) once the current one is this full, so
# residents never wait for one; and an office keeps at most this many registries per type.
PREPARE_NEXT_AT_PERCENT = 75
MAX_REGISTRIES_PER_TYPE = 64
# A tails file holds one 256-byte point per index (plus a short header): how far its writing has got.
TAILS_POINT_BYTES = 256
PROGRESS_POLL_S = 0.5
# AnonCreds encodes an integer raw value as itself only within 32 bits (predicates need that).
MIN_INT_VALUE, MAX_INT_VALUE = -(2**31), 2**31 - 1
# A reference: printable ASCII, no surrounding spaces (an ID-card number, a file number).
_REFERENCE_RE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]{0,%d}[\x21-\x7e])?" % (MAX_REFERENCE_CHARS - 2))
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


log = logging.getLogger(__name__)
Progress = Callable[[float], None]  # the fraction of a registry's tails file written, 0.0 to 1.0
StepProgress = Callable[[str, float], None]  # a publication's step and the fraction of it done
# A publication's steps: schema and credential definition (seconds), first registry (minutes), anchoring.
STEP_DEFINITION, STEP_REGISTRY, STEP_ANCHORING = "definition", "registry", "anchoring"


class IssuanceError(ValueError):
    """A credential request the issuer will not answer."""


class OfficeUnavailable(RuntimeError):
    """An office's private state cannot be opened or saved (the details are in the node's log)."""


class Ledger(LedgerReader, TxSender, Protocol):
    """What the issuer needs from the ledger."""


class IssuerService:
    """An office that issues AnonCreds credentials under its did:city DID."""

    def __init__(self, ledger: Ledger, keys: Sequence[PrivateKey], tails: TailsStore, *,
                 signer: Signer | None = None, salt: bytes = b"", background: bool = True) -> None:
        self.ledger = ledger
        self.keys = list(keys)
        self.signer = signer or self.keys[0].signer()
        self.salt = salt
        self.did = compute_did(self.signer, salt)
        self.tails = tails
        self.published: dict[str, Published] = {}
        self._offers: dict[str, str] = {}  # offer nonce -> credential type
        self._authorized: dict[str, tuple[dict, str]] = {}  # offer nonce -> (values, reference)
        self._issued: dict[str, tuple[str, str, int]] = {}  # reference -> (type, registry, index)
        self.generation = 0  # counts the saves of the whole state; a journal record names the one it follows
        self._lock = threading.RLock()
        # Registries ahead of need: prepared in background threads unless `background` is off
        # (then the operator calls prepare_registry); `on_change` is called when one is anchored.
        self.background = background
        self.on_change: Callable[[], None] | None = None
        self.progress: Callable[[str, float], None] | None = None  # (type, fraction) while a registry is made
        self._preparing: set[str] = set()  # types whose next registry a prepare_registry call is making
        self._creating: set[str] = set()  # types whose registry files are being written (publish included)
        self._publishing: set[str] = set()  # types a publish call is working on
        self._pending: dict[str, Published] = {}  # definitions made, their first registry not anchored yet
        # Called (outside the lock) to seal the state before a new credential definition is anchored.
        self.checkpoint: Callable[[], None] | None = None
        self._threads: list[threading.Thread] = []

    def _send(self, *messages: Any) -> TxOutcome:
        return self.ledger.send(self.keys, list(messages), self.signer).raise_for_error()

    def _state(self):
        return self.ledger.state_at(self.ledger.height())

    # -- set-up ----------------------------------------------------------------------------------

    def register(self) -> str:
        """Create the office's DID (once), listing its tails server; return the DID."""
        if get_did(self._state(), self.did) is None:
            keys = [VerificationKey("key-1", self.keys[0].public_key, [PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION])]
            services = [Service("tails", "AnonCredsTailsServer", self.tails.base_url)]
            self._send(CreateDid(self.salt, self.signer, keys, services))
        return self.did

    def publish(self, ctype: CredentialType, tag: str = "1", progress: StepProgress | None = None) -> dict[str, str]:
        """Anchor schema, credential definition and (if revocable) a first registry; needs accreditation; its ids.

        Minutes at a city's registry size: the slow parts run without the service's lock, so the
        office goes on issuing its other types meanwhile. `progress(step, fraction)` follows it.
        A definition made by an attempt that failed later is kept (and sealed, see `checkpoint`),
        so a retry anchors the same one rather than a second under the same tag.
        """
        with self._lock:
            if ctype.name in self.published:
                return compute_ids(self.published[ctype.name])
            if ctype.name in self._publishing:
                raise IssuanceError(f"credential_type: {ctype.name!r} is being published")
            self._publishing.add(ctype.name)
        try:
            report = progress or (lambda step, fraction: None)
            report(STEP_DEFINITION, 0.0)
            published = self._define(ctype, tag)
            if ctype.revocable:
                with self._lock:
                    registry_tag = self._free_registry_tag(published)
                reporter = self._reporter(ctype.name, lambda fraction: report(STEP_REGISTRY, fraction))
                definition, private_key, tails_hash = self._create_registry(published, registry_tag, reporter)
                report(STEP_ANCHORING, 1.0)
                with self._lock:
                    published.registries.append(self._anchor_registry(published, registry_tag, definition,
                                                                      private_key, tails_hash))
            with self._lock:
                self.published[ctype.name] = published
                self._pending.pop(ctype.name, None)
            return compute_ids(published)
        finally:
            with self._lock:
                self._publishing.discard(ctype.name)

    def _define(self, ctype: CredentialType, tag: str) -> Published:
        """The type's schema and credential definition, anchored (a pending definition is reused)."""
        published = self._pending.get(ctype.name)
        if published is None:
            schema_id = compute_schema_id(self.did, ctype.name, ctype.version)
            schema = anoncreds.Schema.create(ctype.name, ctype.version, self.did, list(ctype.attributes))
            cred_def, private, proof = anoncreds.CredentialDefinition.create(  # seconds: safe primes
                schema_id, schema, self.did, tag, "CL", support_revocation=ctype.revocable)
            published = Published(ctype, schema_id, compute_cred_def_id(self.did, schema_id, tag), cred_def,
                                  private, proof, tag)
            with self._lock:
                self._pending[ctype.name] = published
            if self.checkpoint is not None:
                self.checkpoint()  # sealed before it is anchored: the ledger never holds a definition we lost
        with self._lock:
            state = self._state()
            if get_schema(state, published.schema_id) is None:
                self._send(AnchorSchema(self.did, ctype.name, ctype.version, list(ctype.attributes)))
            if get_cred_def(state, published.cred_def_id) is None:
                self._send(AnchorCredDef(self.did, published.schema_id, published.tag,
                                         canonical_json(published.cred_def.to_dict()["value"])))
        return published

    def _free_registry_tag(self, published: Published) -> str:
        """The tag of the type's next registry: one whose id is not anchored yet (a crash may have taken one)."""
        number, state = len(published.registries) + 1, self._state()
        while True:
            tag = published.tag if number == 1 else f"{published.tag}-{number}"
            if get_rev_reg_def(state, compute_rev_reg_def_id(self.did, published.cred_def_id, tag)) is None:
                return tag
            number += 1

    def _create_registry(self, published: Published, tag: str, progress: Progress | None) -> tuple[Any, Any, str]:
        """A registry's keys and tails file (slow at a city's size: run it outside the lock); with its hash."""
        self._creating.add(published.ctype.name)
        try:
            return self._create_registry_files(published, tag, progress)
        finally:
            self._creating.discard(published.ctype.name)

    def preparing(self) -> frozenset[str]:
        """The credential types whose next registry is being created now."""
        return frozenset(self._creating)

    def _create_registry_files(self, published: Published, tag: str, progress: Progress | None) -> tuple[Any, Any, str]:
        size = published.ctype.max_cred_num
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as scratch:
            made: list[Any] = []
            errors: list[BaseException] = []

            def create() -> None:
                try:
                    made.extend(anoncreds.RevocationRegistryDefinition.create(
                        published.cred_def_id, published.cred_def, self.did, tag, "CL_ACCUM", size,
                        tails_dir_path=scratch))
                except BaseException as exc:  # handed to the waiting thread below
                    errors.append(exc)

            # The library writes the tails file as it goes (and releases the GIL): its size is the progress.
            worker = threading.Thread(target=create, name=f"registry-{tag}", daemon=True)
            worker.start()
            while worker.is_alive():
                worker.join(PROGRESS_POLL_S)
                if progress is not None:
                    written = sum(f.stat().st_size for f in Path(scratch).iterdir() if f.is_file())
                    progress(min(1.0, written / (TAILS_POINT_BYTES * size)))
            if errors:
                raise errors[0]
            definition, private = made
            tails_hash = self.tails.add(definition.tails_location)
        log.info("issuer %s: registry %s of %s (%d credentials) created in %.1f s", self.did, tag,
                 published.ctype.name, size, time.monotonic() - started)
        return definition, private, tails_hash

    def _anchor_registry(self, published: Published, tag: str, definition: Any, private: Any,
                         tails_hash: str) -> Registry:
        """Anchor a created registry and its initial status list; the registry, empty."""
        rev_reg_id = compute_rev_reg_def_id(self.did, published.cred_def_id, tag)
        value = definition.to_dict()["value"]
        location = self.tails.location(tails_hash)
        # Issuance by default: every index is in the accumulator from the start, so issuing
        # changes nothing on the ledger and the order of issuance shows nowhere.
        status = anoncreds.RevocationStatusList.create(published.cred_def, rev_reg_id, definition, private,
                                                       self.did, True, self.ledger.height() + 1)
        listed = status.to_dict()
        self._send(AnchorRevRegDef(self.did, published.cred_def_id, tag, value["maxCredNum"],
                                   canonical_json(value["publicKeys"]), tails_hash, location),
                   UpdateStatusList(rev_reg_id, compute_revoked_bits(listed["revocationList"]),
                                    listed["currentAccumulator"]))
        # The holder's copy of the definition must name the served file, not the scratch path.
        local = dict(definition.to_dict(), value=dict(value, tailsLocation=location))
        size = int(value["maxCredNum"])
        return Registry(rev_reg_id, tag, anoncreds.RevocationRegistryDefinition.load(json.dumps(local)), private,
                        status, size, bytearray((size + 7) // 8))

    # -- registries ahead of need ----------------------------------------------------------------

    def needs_registry(self, credential_type: str) -> bool:
        """True if the type's current registry is past PREPARE_NEXT_AT_PERCENT and none waits after it."""
        with self._lock:
            published = self._published(credential_type)
            current = published.current
            if (current is None or published.spare is not None or credential_type in self._preparing
                    or len(published.registries) >= MAX_REGISTRIES_PER_TYPE):
                return False
            return current.issued * 100 >= PREPARE_NEXT_AT_PERCENT * (current.size - 1)

    def prepare_registry(self, credential_type: str, progress: Progress | None = None) -> str:
        """Create and anchor the type's next registry (minutes at a city's size); its id.

        The slow part runs without the service's lock, so issuance goes on meanwhile.
        """
        with self._lock:
            tag = self._claim_preparation(credential_type)
        return self._prepare_claimed(credential_type, tag, progress)

    def _claim_preparation(self, credential_type: str) -> str:
        """Mark the type's next registry as being prepared (under the lock); its tag."""
        published = self._published(credential_type)
        if not published.ctype.revocable:
            raise IssuanceError(f"credential_type: {credential_type!r} has no revocation registries")
        if credential_type in self._preparing:
            raise IssuanceError(f"credential_type: the next registry of {credential_type!r} is being prepared")
        if len(published.registries) >= MAX_REGISTRIES_PER_TYPE:
            raise IssuanceError(f"credential_type: {credential_type!r} has its maximum of "
                                f"{MAX_REGISTRIES_PER_TYPE} registries")
        self._preparing.add(credential_type)
        return self._free_registry_tag(published)

    def _prepare_claimed(self, credential_type: str, tag: str, progress: Progress | None) -> str:
        try:
            published = self._published(credential_type)
            definition, private, tails_hash = self._create_registry(published, tag, progress)
            with self._lock:
                registry = self._anchor_registry(published, tag, definition, private, tails_hash)
                published.registries.append(registry)
        finally:
            with self._lock:
                self._preparing.discard(credential_type)
        if self.on_change is not None:
            self.on_change()
        return registry.rev_reg_id

    def _prepare_ahead(self, credential_type: str) -> None:
        """Start preparing the next registry in a background thread if the current one is filling."""
        with self._lock:
            if not self.background or not self.needs_registry(credential_type):
                return
            tag = self._claim_preparation(credential_type)  # claimed now: one thread per registry
        thread = threading.Thread(target=self._prepare_logged, args=(credential_type, tag),
                                  name=f"prepare-registry-{credential_type}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _reporter(self, credential_type: str, also: Progress | None = None) -> Progress:
        """A progress callback for one type's registry creation: a log line per tenth, the hooks."""
        last = [-1]

        def report(fraction: float) -> None:
            if also is not None:
                also(fraction)
            if self.progress is not None:
                self.progress(credential_type, fraction)
            if int(fraction * 10) > last[0]:
                last[0] = int(fraction * 10)
                log.info("issuer %s: creating a %s revocation registry: %d%%", self.did, credential_type,
                         int(fraction * 100))
        return report

    def _prepare_logged(self, credential_type: str, tag: str) -> None:
        try:
            rev_reg_id = self._prepare_claimed(credential_type, tag, self._reporter(credential_type))
            log.info("issuer %s: next %s registry %s ready", self.did, credential_type, rev_reg_id)
        except Exception:  # a background thread has no caller: the log is where this goes
            log.exception("issuer %s: preparing the next %s registry failed", self.did, credential_type)

    def wait_prepared(self, timeout_s: float | None = None) -> None:
        """Wait for the registries being prepared in the background (tests, a clean shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout_s)
        self._threads = [t for t in self._threads if t.is_alive()]

    # -- issuance --------------------------------------------------------------------------------

    def offer(self, credential_type: str, values: Mapping[str, Any] | None = None,
              reference: str | None = None) -> dict[str, Any]:
        """A credential offer for one published type (step 1), pre-authorised if `values` are given."""
        with self._lock:
            published = self._published(credential_type)
            if values is not None:
                self._check_values(published, values, reference)
            offer = anoncreds.CredentialOffer.create(published.schema_id, published.cred_def_id,
                                                     published.key_proof)
            body = offer.to_dict()
            self._add_offer(body["nonce"], credential_type, values, reference)
        return {"type": OFFER_TYPE, "thread": body["nonce"], "credential_type": credential_type,
                "issuer": self.did, "offer": body}

    def restore_offer(self, nonce: str, credential_type: str, values: Mapping[str, Any] | None,
                      reference: str | None) -> None:
        """Take back a pending offer recorded (sealed) since the state was last saved; skip a stale one."""
        with self._lock:
            stale = (nonce in self._offers or credential_type not in self.published
                     or (values is not None and reference in self._issued))
            if not stale:
                self._add_offer(nonce, credential_type, values, reference)

    def _add_offer(self, nonce: str, credential_type: str, values: Mapping[str, Any] | None,
                   reference: str | None) -> None:
        if len(self._offers) >= MAX_PENDING_OFFERS:
            evicted = next(iter(self._offers))
            self._offers.pop(evicted)
            self._authorized.pop(evicted, None)
        # Only the nonce is kept: the rest of the offer is the published definition's.
        self._offers[nonce] = credential_type
        if values is not None:
            self._authorized[nonce] = (dict(values), str(reference))

    def _check_values(self, published: Published, values: Mapping[str, Any], reference: str | None) -> None:
        if not isinstance(values, Mapping) or len(values) > MAX_OFFER_VALUES:
            raise IssuanceError(f"values: expected at most {MAX_OFFER_VALUES} attribute values")
        if sorted(values) != list(published.ctype.attributes):
            names = sorted(str(name)[:64] for name in values)
            raise IssuanceError(f"values: expected exactly {list(published.ctype.attributes)}, got {names}")
        for name, value in sorted(values.items()):
            problem = _value_problem(value)
            if problem:
                raise IssuanceError(f"values.{name}: {problem}")
        size = len(json.dumps(list(values.values())))
        if size > MAX_OFFER_VALUES_BYTES:
            raise IssuanceError(f"values: {size} bytes in all, expected at most {MAX_OFFER_VALUES_BYTES}")
        if not reference:
            raise IssuanceError("reference: required (the office's own key for the credential, to revoke it)")
        if not isinstance(reference, str) or not _REFERENCE_RE.fullmatch(reference):
            raise IssuanceError(f"reference: expected 1 to {MAX_REFERENCE_CHARS} printable ASCII characters "
                                "without surrounding spaces")
        if reference in self._issued or any(ref == reference for _, ref in self._authorized.values()):
            raise IssuanceError(f"reference: {reference!r} already has a credential or an offer; revoke it first")

    def restore_issued(self, thread: str, reference: str, entry: Sequence[Any] | None) -> None:
        """Take back a redemption recorded (sealed) since the state was last saved: offer used, index given."""
        with self._lock:
            self._offers.pop(thread, None)
            self._authorized.pop(thread, None)
            if entry is None:
                return  # a credential without a registry: nothing to revoke later
            credential_type, rev_reg_id, index = str(entry[0]), str(entry[1]), int(entry[2])
            published = self.published.get(credential_type)
            try:
                registry = published.registry(rev_reg_id) if published else None
            except KeyError:
                registry = None
            if registry is not None:
                registry.claim(index)
                self._issued[reference] = (credential_type, rev_reg_id, index)

    def pending_reference(self, thread: str) -> str | None:
        """The reference a pre-authorised offer will be issued under, or None."""
        authorized = self._authorized.get(str(thread))
        return None if authorized is None else authorized[1]

    def issued_entry(self, reference: str) -> tuple[str, str, int] | None:
        """(credential type, registry, index) of an unrevoked credential issued under `reference`."""
        return self._issued.get(reference)

    def is_authorized(self, thread: str) -> bool:
        """True if the offer `thread` is pending and pre-authorised (the holder may redeem it)."""
        return str(thread) in self._authorized

    def issue(self, request: Mapping[str, Any], values: Mapping[str, Any] | None = None,
              reference: str | None = None) -> dict[str, Any]:
        """The credential answering a holder's request (step 3); `reference` is the office's own key.

        Without values, the offer must have been pre-authorised: its values and reference apply.
        """
        with self._lock:
            return self._issue(request, values, reference)

    def _issue(self, request: Mapping[str, Any], values: Mapping[str, Any] | None,
               reference: str | None) -> dict[str, Any]:
        thread = str(request.get("thread", ""))
        credential_type = self._offers.get(thread)
        if credential_type is None:
            raise IssuanceError(f"thread: no pending offer {thread[:64]!r} (unknown or already answered)")
        published = self._published(credential_type)
        authorized = self._authorized.get(thread)
        if authorized is not None:
            if values is not None:
                raise IssuanceError("values: this offer was pre-authorised; its values cannot change")
            values, reference = authorized
        elif values is None:
            raise IssuanceError(f"values: required, offer {thread!r} was not pre-authorised")
        else:
            self._check_values(published, values, reference)
        if not isinstance(request.get("request"), Mapping):
            raise IssuanceError("request: expected the holder's AnonCreds credential request object")
        config, registry, index = None, published.current, 0
        if registry is not None:
            if not registry.free:
                self._prepare_ahead(credential_type)
                then = ("the next is being prepared, ask again in a few minutes" if credential_type in self._preparing
                        else "the office has to prepare the next")
                raise IssuanceError(f"credential_type: every registry of {credential_type!r} is full; {then}")
            index = registry.take_index()
            config = anoncreds.CredentialRevocationConfig(registry.rev_reg_def, registry.rev_reg_private,
                                                          registry.status_list, index)
        offer = {"schema_id": published.schema_id, "cred_def_id": published.cred_def_id,
                 "key_correctness_proof": published.key_proof.to_dict(), "nonce": thread}
        try:
            credential = anoncreds.Credential.create(
                published.cred_def, published.cred_def_private, json.dumps(offer), json.dumps(request["request"]),
                {name: str(value) for name, value in values.items()}, None, config)
        except (anoncreds.AnoncredsError, TypeError, ValueError, RecursionError) as exc:
            if registry is not None:
                registry.give_back(index)
            raise IssuanceError(f"request: not a valid request for this offer ({str(exc)[:200]})") from None
        del self._offers[thread]
        self._authorized.pop(thread, None)
        if registry is not None:
            self._issued[reference] = (credential_type, registry.rev_reg_id, index)
            self._prepare_ahead(credential_type)
        return {"type": CREDENTIAL_TYPE, "thread": thread, "credential": credential.to_dict()}

    def revoke(self, references: Sequence[str]) -> TxOutcome:
        """Revoke the credentials issued under these references, in one status-list update per registry.

        The registries' status lists are first brought in line with the ledger's, and a list is
        replaced in memory only once the ledger has committed its update.
        """
        with self._lock:
            self.sync_revocations()
            by_registry = self._revocation_indexes(references)
            outcome = None
            for (credential_type, rev_reg_id), items in sorted(by_registry.items()):
                outcome = self._revoke_registry(credential_type, rev_reg_id, items)
            if outcome is None:
                raise IssuanceError("references: expected at least one reference")
            return outcome

    def _revocation_indexes(self, references: Sequence[str]) -> dict[tuple[str, str], list[tuple[str, int]]]:
        """(reference, registry index) by (credential type, registry); raise IssuanceError naming a bad reference."""
        if isinstance(references, str) or len(references) > MAX_REFERENCES:
            raise IssuanceError(f"references: expected a list of at most {MAX_REFERENCES} references")
        by_registry: dict[tuple[str, str], list[tuple[str, int]]] = {}
        seen: set[str] = set()
        for position, reference in enumerate(references):
            if not isinstance(reference, str) or not _REFERENCE_RE.fullmatch(reference):
                raise IssuanceError(f"references[{position}]: expected 1 to {MAX_REFERENCE_CHARS} printable ASCII "
                                    "characters without surrounding spaces")
            if reference in seen:
                raise IssuanceError(f"references[{position}]: {reference!r} is listed twice")
            seen.add(reference)
            if reference not in self._issued:
                raise IssuanceError(f"references[{position}]: no unrevoked credential issued as {reference!r}")
            credential_type, rev_reg_id, index = self._issued[reference]
            by_registry.setdefault((credential_type, rev_reg_id), []).append((reference, index))
        return by_registry

    def _revoke_registry(self, credential_type: str, rev_reg_id: str, items: list[tuple[str, int]]) -> TxOutcome:
        """Anchor one registry's updated status list, then record it (nothing changes if the ledger refuses)."""
        published = self._published(credential_type)
        registry = published.registry(rev_reg_id)
        updated = registry.status_list.update(published.cred_def, registry.rev_reg_def, registry.rev_reg_private,
                                              None, [index for _, index in items], self.ledger.height() + 1)
        listed = updated.to_dict()
        outcome = self._send(UpdateStatusList(rev_reg_id, compute_revoked_bits(listed["revocationList"]),
                                              listed["currentAccumulator"]))
        registry.status_list = updated
        for reference, _ in items:
            self._issued.pop(reference)
        return outcome

    def sync_revocations(self) -> list[str]:
        """Take each registry's status list from the ledger where it differs; return what was repaired.

        The ledger's latest status list is the truth: a sealed state saved before its update was
        committed (a crash, a failed save) would otherwise build the next update on an older list,
        which the ledger refuses as undoing a revocation.
        """
        with self._lock:
            state = self._state()
            repairs = []
            for name, published in sorted(self.published.items()):
                for registry in published.registries:
                    repair = self._sync_registry(state, name, registry)
                    if repair:
                        repairs.append(repair)
            return repairs

    def _sync_registry(self, state: Any, name: str, published: Registry) -> str:
        if published.status_list is None:
            return ""
        registry = get_rev_reg_def(state, published.rev_reg_id)
        status = get_status_list(state, published.rev_reg_id)
        if registry is None or status is None:
            return ""  # not anchored on this ledger: nothing to take
        local = published.status_list.to_dict()
        if (compute_revoked_bits(local["revocationList"]) == status.revoked
                and local["currentAccumulator"] == status.accumulator):
            return ""
        published.status_list = anoncreds.RevocationStatusList.load(
            json.dumps(compute_status_list_json(registry, status)))
        revoked = [ref for ref, (_, rev_reg_id, index) in sorted(self._issued.items())
                   if rev_reg_id == published.rev_reg_id and is_revoked(status, index)]
        for reference in revoked:
            del self._issued[reference]
        return (f"{name}: the status list of {published.rev_reg_id} differed from the ledger's of height "
                f"{status.timestamp}; taken from the ledger, {len(revoked)} references found revoked there")

    # -- the office's private state -------------------------------------------------------------

    def save(self, path: Path | str, passphrase: str) -> None:
        """Seal the private state (definition and registry keys, offers, register) to a file.

        The controller keys are not in it: they stay in the office's key store.
        """
        salt = new_salt()
        self.seal(path, derive_key(passphrase, salt), salt)

    def seal(self, path: Path | str, key: bytes, salt: bytes) -> None:
        """Seal the private state under a file key already derived (a service saving after each change)."""
        with self._lock:
            write_sealed(Path(path), key, salt, self._export())

    @classmethod
    def load(cls, path: Path | str, passphrase: str, ledger: Ledger, keys: Sequence[PrivateKey], tails: TailsStore,
             *, signer: Signer | None = None) -> "IssuerService":
        """An issuer service restored from a sealed file (raise SealError on a wrong passphrase)."""
        data, _, _ = read_sealed(Path(path), passphrase)
        return cls.restore(data, ledger, keys, tails, signer=signer)

    @classmethod
    def restore(cls, data: Mapping[str, Any], ledger: Ledger, keys: Sequence[PrivateKey], tails: TailsStore,
                *, signer: Signer | None = None) -> "IssuerService":
        """An issuer service from the unsealed contents of its file."""
        service = cls(ledger, keys, tails, signer=signer, salt=bytes.fromhex(data["salt"]))
        if service.did != data["did"]:
            raise ValueError(f"keys: they control {service.did}, the file belongs to {data['did']}")
        service.published = {name: import_published(item) for name, item in data["published"].items()}
        # Files of earlier versions kept the whole offer: [credential type, offer].
        service._offers = {nonce: item[0] if isinstance(item, list) else item
                           for nonce, item in data["offers"].items()}
        authorized = data.get("authorized", {})  # absent in files of earlier versions
        service._authorized = {nonce: (dict(values), ref) for nonce, (values, ref) in authorized.items()}
        service._issued = {ref: tuple(item) for ref, item in data["issued"].items()}
        service.generation = int(data.get("generation", 0))
        service._pending = {name: import_published(item) for name, item in data.get("pending", {}).items()}
        return service

    def _export(self) -> dict[str, Any]:
        return {"did": self.did, "salt": self.salt.hex(), "generation": self.generation, "offers": self._offers,
                "authorized": self._authorized, "issued": self._issued,
                "published": {name: export_published(p) for name, p in self.published.items()},
                "pending": {name: export_published(p) for name, p in self._pending.items()}}

    def serve_tails(self, tails_hash: str) -> bytes:
        """The bytes of one of this issuer's tails files."""
        return self.tails.serve(tails_hash)

    def _published(self, credential_type: str) -> Published:
        published = self.published.get(credential_type)
        if published is None:
            raise IssuanceError(f"credential_type: {str(credential_type)[:80]!r} is not published by {self.did}")
        return published


def _value_problem(value: Any) -> str:
    """Why an attribute value cannot be certified, or ''."""
    if type(value) is int:
        return "" if MIN_INT_VALUE <= value <= MAX_INT_VALUE else \
            f"expected an integer from {MIN_INT_VALUE} to {MAX_INT_VALUE}"
    if not isinstance(value, str):
        return f"expected a string or an integer, got {type(value).__name__}"
    if len(value) > MAX_VALUE_CHARS:
        return f"expected at most {MAX_VALUE_CHARS} characters, got {len(value)}"
    if value != value.strip() or _CONTROL_RE.search(value):
        return "expected text without surrounding spaces, control characters or lone surrogates"
    return ""
