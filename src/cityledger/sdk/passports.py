"""Battery passports for programs: the operator's signed update and a reader's request body.

    body = sign_put(chain_id, [maker_key], operator_did, base=0, document=doc)   # the operator
    stored = client.put_passport(passport_id, body)      # the tier hashes to anchor on chain
    body = read_body("legitimate", request, presentation)                        # a reader
    document = client.read_passport(passport_id, body).document
    auth = sign_log_read(chain_id, [maker_key], operator_did, passport_id, client.status().height)
    log = client.get_passport_log(passport_id, auth)      # the operator or the battery's owner
    covered = verify_passport_log(client, passport_id, auth)  # the whole log against the anchors on chain

`request` comes from POST /verifier/requests for the tier's credential type
(offchain/passport/access.TIER_CREDENTIALS), revealing "holder_did"; `presentation` from the
reader's wallet (sdk.IdentityClient.present).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..core.keys import SCHEME_NAMES, PrivateKey
from ..offchain.passport import (READER_ATTRIBUTE, TIER_CREDENTIALS, AccessEntry, LogBroken, compute_log_read_payload,
                                 compute_put_payload, verify_chain)
from ..offchain.passport.anchoring import HeadProof, verify_log_against_anchors
from ..offchain.passport.store import canonical_passport_id
from .errors import ApiError
from ..wire.batteries import OperatorSignature, PutPassportBody, ReadPassportBody, SignedReportBody

__all__ = ["READER_ATTRIBUTE", "TIER_CREDENTIALS", "read_body", "report_item", "sign_log_read", "sign_put",
           "verify_passport_log"]


def sign_put(chain_id: str, keys: Sequence[PrivateKey], operator: str, base: int,
             document: Mapping[str, Any]) -> PutPassportBody:
    """The PUT body storing `document` over `base` stored tier versions, signed by the operator's controller keys."""
    passport_id = canonical_passport_id(document["metadata"]["passportIdentifier"])
    payload = compute_put_payload(chain_id, passport_id, base, document)
    signatures = [OperatorSignature(scheme=SCHEME_NAMES[key.scheme], key=key.public_key.key.hex(),
                                    signature=key.sign(payload).hex()) for key in keys]
    return PutPassportBody(operator=operator, base=base, document=dict(document), signatures=signatures)


def read_body(tier: str, request: Mapping[str, Any], presentation: str) -> ReadPassportBody:
    """The body of a restricted read."""
    return ReadPassportBody(tier=tier, request=dict(request), presentation=presentation)


def sign_log_read(chain_id: str, keys: Sequence[PrivateKey], reader: str, passport_id: str,
                  height: int) -> dict[str, Any]:
    """The query parameters that let `reader` (the operator's DID, or the battery owner's address) read a
    passport's access log, signed by its controller keys (or the owner's key) at a recent `height`."""
    passport_id = canonical_passport_id(passport_id)
    payload = compute_log_read_payload(chain_id, passport_id, reader, height)
    return {"reader": reader, "height": height,
            "signature": [f"{SCHEME_NAMES[key.scheme]}:{key.public_key.key.hex()}:{key.sign(payload).hex()}"
                          for key in keys]}


def verify_passport_log(client: Any, passport_id: str, auth: Mapping[str, Any]) -> int:
    """Read a passport's whole access log and check it against every anchor on chain; the entries anchored.

    The entries must re-hash as the passport's chain, every service root the node shows a proof for
    must hold the head the log has at that count, and every head the operator anchored itself
    (batteries/access_log) must be in the log: an omitted, changed or reordered entry raises LogBroken.
    """
    entries: list[AccessEntry] = []
    while True:
        page = client.get_passport_log(passport_id, auth, after_seq=len(entries))
        entries += [AccessEntry(e.seq, e.passport_id, e.tier, e.version, e.reader_did, e.height, e.time_s, e.prev,
                                e.hash) for e in page.entries]
        if not page.entries or len(entries) >= page.head_seq:
            break
    if verify_chain(entries, passport_id=page.passport_id) != page.head_hash or len(entries) != page.head_seq:
        raise LogBroken("head", f"the log served does not re-hash to its head after {page.head_seq} entries")
    proofs = [HeadProof(a.seq, a.height, page.passport_id, a.count, a.head, a.index, a.size, tuple(a.path))
              for a in page.anchors]
    roots = {}
    for proof in proofs:
        answer = client.query("batteries", "log_root", service=page.service, seq=proof.seq)
        roots[proof.seq] = (bytes.fromhex(answer["root"]), answer["size"])
    covered = verify_log_against_anchors(entries, proofs, roots)
    try:
        own = client.query("batteries", "access_log", id=page.passport_id)
    except ApiError as exc:
        if exc.status != 404:
            raise
        own = {"anchors": []}  # not registered on chain yet: only the service's roots can cover it
    for anchor in own["anchors"]:  # the operator's own anchors (batteries/1.0/anchor_access_log), first page
        if anchor["count"] > len(entries) or entries[anchor["count"] - 1].hash_hex != anchor["head"]:
            raise LogBroken("entries", f"the operator's anchor {anchor['index']} holds a head the log served "
                                       f"does not reach after {anchor['count']} entries")
        covered = max(covered, anchor["count"])
    return covered


def report_item(chain_id: str, bms_key: PrivateKey, battery: str, passport_id: str, sequence: int,
                report: Mapping[str, Any]) -> SignedReportBody:
    """One SoH report signed by the battery's BMS key, for Client.post_reports (or, its hash, ReportHealth)."""
    from ..modules.batteries import compute_report_payload
    from ..offchain.identity.devices import sign_device_message
    from ..offchain.passport.reports import compute_report_hash

    payload = compute_report_payload(chain_id, passport_id, sequence, compute_report_hash(dict(report)))
    return SignedReportBody(passport=passport_id, sequence=sequence, report=dict(report),
                            signature=sign_device_message(bms_key, battery, payload).hex())
