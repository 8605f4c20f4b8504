"""Issuer services hosted beside a node: the city's ID office and transport office.

A city runs its offices' issuer services on the city government's node, in the node's process:
the offices are departments of the city government, whose node already holds keys, serves the
REST API and sees the ledger without a network hop. Each office lives in its own folder of the
node's home, written by `cityledger init` (its DID and accreditation are in the genesis, as the
consortium's are):

    <home>/issuers/<name>/issuer.toml   name, credential types, public URL of this node's API
    <home>/issuers/<name>/key.json      the office DID's controller key (secret, mode 0600)
    <home>/issuers/<name>/token         bearer token of the office's operator endpoints (0600)
    <home>/issuers/<name>/passphrase    seals state.sealed (0600), unless passphrase_env names a variable
    <home>/issuers/<name>/state.sealed  definition and registry private keys, offers, its register
    <home>/issuers/<name>/state.journal offers and redemptions since state.sealed was last written (sealed records)
    <home>/issuers/<name>/tails/        tails files, served at <public_url>/issuers/<did>/tails/<hash>
    <home>/issuers/<name>/publishing.json the credential types being published (resumed when the node starts)

An office publishes its credential types once (`cityledger issuer publish`: seconds for the
credential definition, minutes for a city-sized first revocation registry), in a background thread
started by `POST /issuers/{did}/publish`, whose state and progress GET /issuers/{did} reports; a
publication the node was stopped in is resumed when it starts again. Every change of its
private state is sealed before the answer leaves (an offer or a redemption as one record appended
to state.journal, anything else by rewriting state.sealed, which folds the journal in), so a
restarted node can still revoke what it issued. Registries after the first are prepared in the
background (offchain/identity/issuer.py) and sealed when anchored. The ledger's status lists are the truth about revocation: when the state is loaded (and before each
revocation) a registry whose sealed status list differs from the ledger's takes the ledger's, and
the repair is logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import threading
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..core.keys import PrivateKey
from ..modules.devices import MANUFACTURER_TYPE
from ..modules.identity import PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION, compute_did
from ..offchain.identity.issuer import (
    STEP_ANCHORING,
    STEP_DEFINITION,
    IssuanceError,
    IssuerService,
    OfficeUnavailable,
)
from ..offchain.identity.ledger import LedgerError, NodeLedger, TxOutcome
from ..offchain.identity.sealed import append_sealed_record, derive_key, new_salt, read_sealed, read_sealed_records
from ..offchain.identity.tails import TailsStore
from ..modules.identity.messages import MAX_CRED_NUM
from ..offchain.identity.types import (
    CITY_REGISTRY_SIZE,
    KNOWN_TYPES,
    MIN_REGISTRY_SIZE,
    RESIDENT_ID,
    VEHICLE_REGISTRATION,
    CredentialType,
)
from .keyfiles import load_key, write_key_file, write_secret_text

log = logging.getLogger(__name__)

ISSUERS_DIR = "issuers"
MAX_HOSTED_ISSUERS = 16
# An offer or a redemption is appended to the office's journal rather than rewriting state.sealed
# (megabytes at the city's size); past this many records the whole state is saved and the journal
# starts again.
MAX_JOURNAL_RECORDS = 256
# A failed publication's reason, as GET /issuers/{did} reports it (project text only, never a path).
MAX_PUBLICATION_REASON_CHARS = 300
# Which credential types an office is publishing, so that a node restarted meanwhile resumes them.
PUBLISHING_FILE = "publishing.json"
# The offices `cityledger init` creates: folder name -> (display name, credential types).
OFFICES = {"id-office": ("City ID Office", (RESIDENT_ID,)),
           "transport-office": ("City Transport Office", (VEHICLE_REGISTRATION,))}

CONFIG_TEMPLATE = """# An issuer service hosted by this node (see cityledger/node/issuers.py)
name = "{name}"
credential_types = {types}
# Where holders reach this node's REST API; the tails files' URLs are anchored under it.
public_url = "{public_url}"
# Leave empty to read the sealing passphrase from the file `passphrase`; or name an environment variable.
passphrase_env = ""
# Credentials per revocation registry: a presentation hides its holder among one registry's holders,
# so the default holds the whole city. The next registry is prepared in the background before the
# current one fills. Creating one of 131072 takes minutes and writes a 33.6 MB tails file.
registry_size = {registry_size}
"""
# The registry size `init` writes (tests/conftest.py lowers it: a city-sized registry takes minutes).
DEFAULT_REGISTRY_SIZE = CITY_REGISTRY_SIZE


# An office's display name: printable, no surrounding spaces; its public URL: printable ASCII.
MAX_ISSUER_NAME_CHARS = 64
_NAME_RE = re.compile(r"[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]{0,%d}[^\s\x00-\x1f\x7f-\x9f])?"
                      % (MAX_ISSUER_NAME_CHARS - 2))
_URL_RE = re.compile(r"https?://[\x21-\x7e]{1,200}")


class IssuerConfigError(ValueError):
    """An issuer folder that cannot be read."""


@dataclass
class Publication:
    """A credential type's publication that is under way or failed (a published type needs none)."""

    state: str  # "preparing" or "failed"
    step: str = STEP_DEFINITION
    percent: int = 0
    reason: str = ""


def compute_tails_url(public_url: str, did: str) -> str:
    """The base URL under which a hosted issuer's tails files are served."""
    return f"{public_url.rstrip('/')}/issuers/{did}/tails/"


def init_issuers(home: Path, public_url: str) -> list[dict[str, Any]]:
    """Write the offices' folders; return their genesis DID entries (with accreditations)."""
    entries = []
    for folder_name, (name, types) in OFFICES.items():
        folder = Path(home) / ISSUERS_DIR / folder_name
        (folder / "tails").mkdir(parents=True, exist_ok=True)
        key = PrivateKey.generate()
        write_key_file(folder / "key.json", key, name)
        write_secret_text(folder / "token", secrets.token_urlsafe(32))
        write_secret_text(folder / "passphrase", secrets.token_urlsafe(32))
        (folder / "issuer.toml").write_text(CONFIG_TEMPLATE.format(name=name, types=json.dumps(list(types)),
                                                                   public_url=public_url,
                                                                   registry_size=DEFAULT_REGISTRY_SIZE))
        did = compute_did(key.signer(), b"")
        public = {"scheme": "ed25519", "key": key.public_key.key.hex()}
        entries.append({"controller": {"threshold": 1, "keys": [public]}, "salt": "",
                        "keys": [dict(public, fragment="key-1", purposes=[PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION])],
                        "services": [{"fragment": "tails", "type": "AnonCredsTailsServer",
                                      "endpoint": compute_tails_url(public_url, did)}],
                        "accreditations": list(types)})
    return entries


def compute_organisation_entry(key: PrivateKey, accreditations: list[str]) -> dict[str, Any]:
    """The genesis DID entry of an organisation key (its controller and its key-1) with accreditations."""
    public = {"scheme": "ed25519", "key": key.public_key.key.hex()}
    return {"controller": {"threshold": 1, "keys": [public]}, "salt": "",
            "keys": [dict(public, fragment="key-1", purposes=[PURPOSE_ASSERTION, PURPOSE_AUTHENTICATION])],
            "services": [], "accreditations": accreditations}


def compute_manufacturer_entry(key: PrivateKey) -> dict[str, Any]:
    """The genesis DID entry of an organisation key accredited as a device manufacturer."""
    return compute_organisation_entry(key, [MANUFACTURER_TYPE])


@dataclass(frozen=True)
class IssuerConfig:
    """One hosted issuer's settings, read from its folder."""

    folder: Path
    name: str
    credential_types: tuple[CredentialType, ...]
    public_url: str
    passphrase_env: str
    registry_size: int = CITY_REGISTRY_SIZE


def load_issuer_config(folder: Path) -> IssuerConfig:
    """Read issuer.toml; raise IssuerConfigError naming the bad setting."""
    path = Path(folder) / "issuer.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise IssuerConfigError(f"{path}: cannot read ({exc})") from None
    types = raw.get("credential_types", [])
    unknown = [t for t in types if t not in KNOWN_TYPES]
    if not isinstance(types, list) or not types or unknown:
        raise IssuerConfigError(f"{path}: credential_types: expected some of {sorted(KNOWN_TYPES)}, got {types!r}")
    public_url = raw.get("public_url", "")
    if not isinstance(public_url, str) or not _URL_RE.fullmatch(public_url):
        raise IssuerConfigError(f"{path}: public_url: expected an http(s) URL without spaces, got {public_url!r}")
    name = raw.get("name", Path(folder).name)
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise IssuerConfigError(f"{path}: name: expected 1 to {MAX_ISSUER_NAME_CHARS} printable characters "
                                f"without surrounding spaces, got {name!r}")
    size = raw.get("registry_size", CITY_REGISTRY_SIZE)
    if type(size) is not int or not MIN_REGISTRY_SIZE <= size <= MAX_CRED_NUM:
        raise IssuerConfigError(f"{path}: registry_size: expected an integer from {MIN_REGISTRY_SIZE} to "
                                f"{MAX_CRED_NUM}, got {size!r}")
    ctypes = tuple(replace(KNOWN_TYPES[t], max_cred_num=size) for t in types)
    return IssuerConfig(Path(folder), name, ctypes, public_url, str(raw.get("passphrase_env", "")), size)


class HostedIssuer:
    """One office's issuer service inside the node, its state sealed to its folder after each change."""

    def __init__(self, config: IssuerConfig, key: PrivateKey, token: str, ledger: NodeLedger) -> None:
        self.config = config
        self.key = key
        self.did = compute_did(key.signer(), b"")
        self._token = token
        self._ledger = ledger
        self._service: IssuerService | None = None
        self._file_key: tuple[bytes, bytes] | None = None  # (key, salt) of state.sealed
        self._journal_records = 0
        self._preparing: dict[str, int] = {}  # credential type -> percent of a registry being created
        self._publications: dict[str, Publication] = {}  # credential type -> publication under way or failed
        self._threads: list[threading.Thread] = []
        self._closing = False  # set when the node stops: a publication cut short by it stays to be resumed
        self._lock = threading.RLock()

    @property
    def state_path(self) -> Path:
        return self.config.folder / "state.sealed"

    @property
    def journal_path(self) -> Path:
        return self.config.folder / "state.journal"

    def is_operator(self, token: str) -> bool:
        """True if `token` is this office's operator token."""
        return hmac.compare_digest(token.encode(), self._token.encode())

    def service(self) -> IssuerService:
        """The issuer service, restored from state.sealed on first use; raise OfficeUnavailable."""
        if self._service is not None:
            return self._service  # loaded: readers need not wait for a publish holding the lock
        with self._lock:
            if self._service is None:
                try:
                    self._load()
                except (OSError, ValueError, KeyError, TypeError) as exc:  # SealError, IssuerConfigError too
                    self._service = None
                    log.error("issuer %s (%s): cannot open its state: %s", self.config.folder.name, self.did, exc)
                    raise OfficeUnavailable(f"issuer: the state of {self.config.name} cannot be opened "
                                            "(the node's log says why)") from None
            if self._service is None:
                raise RuntimeError("issuer: loaded above")
            return self._service

    def _load(self) -> None:
        """Restore the service from state.sealed and its journal (or start afresh); check it against the ledger."""
        tails = TailsStore(self.config.folder / "tails", compute_tails_url(self.config.public_url, self.did))
        passphrase = self._passphrase()
        if self.state_path.exists():
            data, file_key, salt = read_sealed(self.state_path, passphrase)
            service = IssuerService.restore(data, self._ledger, [self.key], tails)
            _replay_journal(service, self.journal_path, file_key)
        else:
            salt = new_salt()
            file_key = derive_key(passphrase, salt)
            service = IssuerService(self._ledger, [self.key], tails)
        for ctype in self.config.credential_types:
            if ctype.name in service.published:  # issuer.toml's size applies to the registries made from now on
                published = service.published[ctype.name]
                published.ctype = replace(published.ctype, max_cred_num=self.config.registry_size)
        service.on_change = self._saved_after_preparation
        service.checkpoint = self._checkpoint
        service.progress = self._record_progress
        self._service, self._file_key = service, (file_key, salt)
        if self.journal_path.exists():
            self._save()  # fold the journal in (and drop a torn last record with it)
        self._sync_revocations()

    def _sync_revocations(self) -> None:
        """Repair the sealed revocation state from the ledger's status lists (logged), and save it."""
        if self._service is None:
            raise RuntimeError("issuer: synchronised only once loaded")
        repairs = self._service.sync_revocations()
        for repair in repairs:
            log.warning("issuer %s (%s): %s", self.config.folder.name, self.did, repair)
        if repairs:
            self._save()

    def _saved_after_preparation(self) -> None:
        """Seal the state once a registry prepared in the background is anchored (its keys are in it)."""
        with self._lock:
            try:
                self._save()
            except (OSError, ValueError) as exc:
                log.error("issuer %s (%s): cannot save its state: %s", self.config.folder.name, self.did, exc)

    def _checkpoint(self) -> None:
        """Seal the state now (a new credential definition, before it is anchored); raise if it cannot be."""
        with self._lock:
            self._save()

    def _record_progress(self, credential_type: str, fraction: float) -> None:
        """Keep how far a registry's creation has got, for info() (the service logs it)."""
        self._preparing[credential_type] = round(fraction * 100)

    def _passphrase(self) -> str:
        variable = self.config.passphrase_env
        if variable:
            if variable not in os.environ:
                raise IssuerConfigError(f"{self.config.folder}: passphrase_env: {variable} is not set")
            return os.environ[variable]
        return (self.config.folder / "passphrase").read_text().strip()

    def _save(self) -> None:
        service = self.service()
        if self._file_key is None:
            raise RuntimeError("issuer: the file key is set whenever the service is")
        service.generation += 1  # the journal's records follow the previous save: stale from now on
        service.seal(self.state_path, *self._file_key)
        self.journal_path.unlink(missing_ok=True)
        self._journal_records = 0

    def info(self) -> dict[str, Any]:
        """DID, name, credential types, what is published and each type's publication (no secrets)."""
        service = self.service()
        published = dict(service.published)
        preparing = {name: self._preparing[name] for name in sorted(self._preparing)
                     if name in service.preparing()}
        return {"did": self.did, "name": self.config.name, "folder": self.config.folder.name,
                "credential_types": [t.name for t in self.config.credential_types],
                "registry_size": self.config.registry_size, "preparing": preparing,
                "tails_url": compute_tails_url(self.config.public_url, self.did),
                "published": {name: {"schema_id": p.schema_id, "cred_def_id": p.cred_def_id,
                                     "rev_reg_id": p.rev_reg_id or ""} for name, p in sorted(published.items())},
                "publications": {t.name: self.publication(t.name) for t in self.config.credential_types}}

    def publication(self, credential_type: str) -> dict[str, Any]:
        """A type's publication state (the fields of wire.identity.PublicationView)."""
        view = {"credential_type": credential_type, "state": "unpublished", "step": "", "percent": 0, "reason": "",
                "schema_id": "", "cred_def_id": "", "rev_reg_id": ""}
        under_way = self._publications.get(credential_type)
        published = self.service().published.get(credential_type)
        if under_way is not None:
            view.update(state=under_way.state, step=under_way.step, percent=under_way.percent,
                        reason=under_way.reason)
        elif published is not None:
            view.update(state="published", step="", percent=100, schema_id=published.schema_id,
                        cred_def_id=published.cred_def_id, rev_reg_id=published.rev_reg_id or "")
        return view

    def publish(self, credential_type: str) -> dict[str, Any]:
        """Start publishing a type in the background (once; a failed one again); its publication state."""
        ctype = next((t for t in self.config.credential_types if t.name == credential_type), None)
        if ctype is None:
            names = [t.name for t in self.config.credential_types]
            raise IssuanceError(f"credential_type: {self.config.name} issues {names}, not {credential_type[:80]!r}")
        with self._lock:
            service = self.service()
            under_way = self._publications.get(credential_type)
            if credential_type in service.published:
                if under_way is not None:  # published, but its state could not be sealed: seal it now
                    self._save()
                    del self._publications[credential_type]
            elif under_way is None or under_way.state == "failed":
                self._publications[credential_type] = Publication("preparing")
                self._mark_publishing(credential_type, True)
                thread = threading.Thread(target=self._run_publication, args=(ctype,), daemon=True,
                                          name=f"publish-{self.config.folder.name}-{credential_type}")
                self._threads.append(thread)
                thread.start()
            return self.publication(credential_type)

    def _run_publication(self, ctype: CredentialType) -> None:
        """The background publication: schema, definition, first registry, anchoring; then seal the state."""
        name = ctype.name

        def progress(step: str, fraction: float) -> None:
            self._publications[name] = Publication("preparing", step, round(fraction * 100))

        try:
            self.service().publish(ctype, progress=progress)
            with self._lock:
                self._save()
                self._publications.pop(name, None)
                self._mark_publishing(name, False)
            log.info("issuer %s (%s): %s published", self.config.folder.name, self.did, name)
        except Exception as exc:  # a background thread has no caller: the state and the log report it
            log.exception("issuer %s (%s): publishing %s failed", self.config.folder.name, self.did, name)
            with self._lock:
                last = self._publications.get(name) or Publication("preparing")
                self._publications[name] = Publication("failed", last.step, last.percent, _failure_reason(exc))
                if not self._closing:  # cut short by the node stopping: resumed when it starts again
                    self._mark_publishing(name, False)

    def _mark_publishing(self, credential_type: str, publishing: bool) -> None:
        """Add a type to publishing.json, or take it out (the file goes when none is left)."""
        path = self.config.folder / PUBLISHING_FILE
        names = set(_read_publishing(path))
        names = names | {credential_type} if publishing else names - {credential_type}
        if names:
            scratch = path.with_suffix(".tmp")
            scratch.write_text(json.dumps(sorted(names)))
            scratch.replace(path)
        else:
            path.unlink(missing_ok=True)

    def resume_publications(self) -> list[str]:
        """Start again the publications a stopped node left under way (node start); the types resumed."""
        path = self.config.folder / PUBLISHING_FILE
        names = [t.name for t in self.config.credential_types if t.name in _read_publishing(path)]
        for name in names:
            log.warning("issuer %s (%s): resuming the publication of %s, under way when the node stopped",
                        self.config.folder.name, self.did, name)
            try:
                self.publish(name)
            except (IssuanceError, OfficeUnavailable, OSError) as exc:
                log.error("issuer %s (%s): cannot resume publishing %s: %s", self.config.folder.name, self.did,
                          name, exc)
        return names

    def close(self) -> None:
        """The node is stopping: a publication it cuts short is resumed at the next start."""
        self._closing = True

    def wait_published(self, timeout_s: float | None = None) -> None:
        """Wait for the background publications (tests, a clean shutdown)."""
        for thread in list(self._threads):
            thread.join(timeout_s)
        self._threads = [t for t in self._threads if t.is_alive()]

    def offer(self, credential_type: str, values: Mapping[str, Any], reference: str) -> dict[str, Any]:
        """A pre-authorised offer: the office has checked the person and fixed the values."""
        with self._lock:
            service = self.service()
            offer = service.offer(credential_type, values, reference)
            self._journal({"generation": service.generation, "nonce": offer["thread"],
                           "credential_type": credential_type, "values": dict(values), "reference": reference})
            return offer

    def redeem(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The credential for a holder's request answering a pre-authorised offer (once)."""
        with self._lock:
            service = self.service()
            thread = str(request.get("thread", "")) if isinstance(request, Mapping) else ""
            reference = service.pending_reference(thread)
            credential = service.issue(request)
            # A record, not the whole state: at the city's size the register alone is ~9 MB.
            entry = service.issued_entry(reference) if reference is not None else None
            self._journal({"generation": service.generation, "kind": "issued", "thread": thread,
                           "reference": reference, "entry": None if entry is None else list(entry)})
            return credential

    def _journal(self, record: dict[str, Any]) -> None:
        """Seal one change as a journal record, or save the whole state every MAX_JOURNAL_RECORDS."""
        if self._journal_records >= MAX_JOURNAL_RECORDS or self._file_key is None:
            self._save()
        else:
            append_sealed_record(self.journal_path, self._file_key[0], record)
            self._journal_records += 1

    def revoke(self, references: Sequence[str]) -> TxOutcome:
        """Revoke credentials by the office's references, in one status-list update.

        The service changes its state only once the ledger has committed the update, so sealing
        whatever it holds afterwards, whether the call succeeded or failed, keeps file and ledger
        in step; a state that still falls behind (a crash before the save) is repaired from the
        ledger on the next load.
        """
        with self._lock:
            service = self.service()
            try:
                return service.revoke(references)
            finally:
                self._save()

    def tails(self, tails_hash: str) -> bytes:
        """A tails file's bytes (public); raise LookupError, or ValueError for a malformed hash."""
        folder = self.config.folder / "tails"
        return TailsStore(folder, self.config.public_url).serve(tails_hash)


def _failure_reason(exc: BaseException) -> str:
    """Why a publication failed, in the project's own words: a library's or the OS's text may name paths."""
    if isinstance(exc, (IssuanceError, OfficeUnavailable)):
        reason = str(exc)
    elif isinstance(exc, LedgerError):
        reason = f"the ledger refused it: {exc.codespace}/{exc.code}: {exc.log}"
    else:
        reason = f"{type(exc).__name__} (the node's log says why)"
    return reason[:MAX_PUBLICATION_REASON_CHARS]


def _read_publishing(path: Path) -> list[str]:
    """The type names in a publishing.json ([] if absent or unreadable)."""
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [str(name) for name in names] if isinstance(names, list) else []


def _replay_journal(service: IssuerService, path: Path, file_key: bytes) -> None:
    """Take back the offers and redemptions recorded in the journal since the state was saved."""
    for record in read_sealed_records(path, file_key):
        if not isinstance(record, dict) or record.get("generation") != service.generation:
            continue
        if record.get("kind") == "issued":
            service.restore_issued(str(record["thread"]), str(record["reference"]), record.get("entry"))
        else:
            service.restore_offer(str(record["nonce"]), str(record["credential_type"]), record.get("values"),
                                  record.get("reference"))


def open_hosted_issuers(home: Path, node: Any) -> dict[str, HostedIssuer]:
    """The issuers configured in a node's home, by DID (their state is loaded on first use)."""
    root = Path(home) / ISSUERS_DIR
    if not root.is_dir():
        return {}
    ledger = NodeLedger(node)
    hosted: dict[str, HostedIssuer] = {}
    for folder in sorted(root.iterdir())[:MAX_HOSTED_ISSUERS]:
        if not (folder / "issuer.toml").exists():
            continue
        config = load_issuer_config(folder)
        try:
            key = load_key(folder / "key.json")
            token = (folder / "token").read_text().strip()
        except (OSError, KeyError, ValueError) as exc:
            raise IssuerConfigError(f"{folder}: cannot read key.json or token ({exc})") from None
        issuer = HostedIssuer(config, key, token, ledger)
        hosted[issuer.did] = issuer
    return hosted
