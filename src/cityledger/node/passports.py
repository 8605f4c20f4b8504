"""The passport service hosted by a node: battery passports, encrypted per tier, under its home.

    <home>/passports/            the PassportStore (SQLite index and access logs, one blob per tier version)
    <home>/passport-master.key   the store's master key (32 random bytes, mode 0600), kept out of the store's folder

The master key wraps every per-tier key; a copy of passports/ without it opens nothing.

With [passports] anchor = true, the node anchors its passports' access-log heads itself: every
anchor_interval_s seconds (ANCHOR_INTERVAL_S by default) one batteries/1.0/anchor_log_root
transaction over every head that moved, signed by anchor_key (default the node key), whose DID
must be registered and accredited as battery-passport-service through governance. Until it is,
each attempt is refused and logged, and the heads wait (offchain/passport/anchoring.py).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..core.keys import PrivateKey, compute_address
from ..modules.batteries import AnchorLogRoot, AnchorReportRoot, get_log_root, get_report_root
from ..modules.identity import compute_did
from ..offchain.passport import PassportStore, load_or_create_master_key
from ..offchain.passport.anchoring import LogAnchorer
from ..offchain.passport.reports import SignaturePool
from ..sdk.txs import sign, tx_id

log = logging.getLogger("cityledger.node.passports")

PASSPORTS_DIR = "passports"
PASSPORT_KEY_FILE = "passport-master.key"
ANCHOR_COMMIT_TIMEOUT_S = 60  # how long one anchor waits for its block before the next interval retries
SIGNING = threading.Lock()


def open_passport_store(home: Path) -> PassportStore:
    """The node's passport store, its master key created (0600, core/files.write_secret_file) on first use."""
    home = Path(home)
    return PassportStore(home / PASSPORTS_DIR, load_or_create_master_key(home / PASSPORT_KEY_FILE))


class EngineAnchorChain:
    """A service's numbered roots on chain (log heads, or report batches): this node's engine, the
    service key signing, the state answering."""

    def __init__(self, node, key: PrivateKey, message=AnchorLogRoot, get_root=get_log_root) -> None:
        self.node, self.key, self.message, self.get_root = node, key, message, get_root
        self.did = compute_did(key.signer(), b"")
        self.address = compute_address(key.signer())

    def last_seq(self) -> int:
        root = self.get_root(self.node.store, self.did)
        return 0 if root is None else root.seq

    def root_at(self, seq: int) -> tuple[bytes, int] | None:
        root = self.get_root(self.node.store, self.did, seq)
        return None if root is None else (root.root, root.height)

    def send(self, seq: int, root: bytes, size: int) -> int:
        """Sign, submit and wait for one AnchorLogRoot; the height, or RuntimeError if it did not land."""
        with SIGNING:  # the log and report chains share the service key's nonces
            nonce = self.node.engine.pending_nonce(self.address)
            raw = sign(self.node.app.chain_id, [self.key], nonce, [self.message(self.did, seq, root, size)])
            submitted = self.node.engine.submit(raw)
        if not submitted.result.ok:
            raise RuntimeError(f"anchor {seq} refused: {submitted.result.log}")
        if self.node.engine.wait_for_tx(bytes.fromhex(tx_id(raw)), ANCHOR_COMMIT_TIMEOUT_S) is None:
            raise RuntimeError(f"anchor {seq}: not committed within {ANCHOR_COMMIT_TIMEOUT_S} s")
        landed = self.root_at(seq)
        if landed is None or landed[0] != root:
            raise RuntimeError(f"anchor {seq}: committed but refused by the batteries module")
        return landed[1]


class PassportAnchoring:
    """The node's anchoring thread (started by Node.start when [passports] anchor is on)."""

    def __init__(self, node, key: PrivateKey, interval_s: int, verify_workers: int = 1) -> None:
        self.chain = EngineAnchorChain(node, key)
        self.anchorer = LogAnchorer(node.passports, self.chain)
        # SoH report batches (POST /passports/reports) commit their roots with the same key; their
        # BMS signatures are verified on `verify_workers` processes (1: in the request's thread).
        self.reports = EngineAnchorChain(node, key, AnchorReportRoot, get_report_root)
        self.pool = SignaturePool(verify_workers)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def service(self) -> str:
        """The service DID whose roots the proofs lead to."""
        return self.chain.did

    def start(self) -> None:
        self.pool.start()
        self._thread = threading.Thread(target=self.anchorer.run, args=(self.interval_s, self._stop),
                                        name="passport-anchoring", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.pool.stop()
