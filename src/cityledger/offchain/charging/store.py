"""The CSMS's state on disk (SQLite): sessions, each vehicle's channel and newest voucher, idTokens.

Every change is committed before the CSMS answers the message that caused it, so a CSMS killed at
any point restarts knowing every session it acknowledged, the newest voucher of every channel, each
transaction's highest applied seqNo and the next 1.6 transaction id; a charger that replays its
queued events then settles the session as if nothing happened. Receipts are not kept: the vehicle
has its copy, and the final voucher is what settles.

Two levels (`[charging] store_sync`): "normal" (WAL, synchronous=NORMAL: a commit survives the
process being killed, an OS crash or power cut may lose the last ones; about 0.1 ms a write) and
"full" (synchronous=FULL: an fsync per commit, also survives a power cut; about 4 ms a write on
the development machine, which the event loop waits for). What a power cut loses under "normal"
heals: vouchers are cumulative (the vehicle's next one covers all it owes) and meter readings are
registers (the next one covers the lost ones); a lost Ended leaves the session to the idle timeout.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ...core.keys import PublicKey
from .accounting import ChannelTerms, Session, Voucher, VoucherBook
from .tariff import Tariff

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS books (id_token TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ended (session_id TEXT NOT NULL, charger_id TEXT NOT NULL, started_at TEXT NOT NULL,
    day TEXT NOT NULL, energy_wh INTEGER NOT NULL, PRIMARY KEY (session_id, charger_id, started_at));
CREATE INDEX IF NOT EXISTS ended_by_day ON ended (day);
"""
SECRET_BYTES = 32
SYNC_LEVELS = {"normal": "NORMAL", "full": "FULL"}


class CsmsStore:
    """One SQLite file; every write is one committed transaction."""

    def __init__(self, path: Path | str, sync: str = "normal") -> None:
        if sync not in SYNC_LEVELS:
            raise ValueError(f"store_sync: expected one of {', '.join(SYNC_LEVELS)}, got {sync!r}")
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The CSMS writes from its event loop's thread; the node opens the store on another.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={SYNC_LEVELS[sync]}")
        self._db.executescript(SCHEMA)
        os.chmod(self.path, 0o600)

    def close(self) -> None:
        """Close the file (every write is already committed)."""
        self._db.close()

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._db.execute(sql, args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- meta --------------------------------------------------------------------------------

    def secret(self) -> bytes:
        """The operator's pseudonym secret, created once (idTokens stay stable across restarts)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'pseudonym_secret'").fetchone()
        if row is not None:
            return bytes.fromhex(row[0])
        secret = os.urandom(SECRET_BYTES)
        self._write([("INSERT INTO meta VALUES ('pseudonym_secret', ?)", (secret.hex(),))])
        return secret

    def next_transaction_id(self) -> int:
        """The last 1.6 transaction id handed out (0: none)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'next_tx'").fetchone()
        return int(row[0]) if row else 0

    def save_transaction_id(self, value: int) -> None:
        """Remember a handed-out 1.6 transaction id, so a restart never repeats it."""
        self._write([("INSERT OR REPLACE INTO meta VALUES ('next_tx', ?)", (str(value),))])

    # -- books and sessions ------------------------------------------------------------------

    def save(self, books: dict[str, VoucherBook], sessions: list[Session]) -> None:
        """Write these books and sessions in one transaction."""
        statements = [("INSERT OR REPLACE INTO books VALUES (?, ?)", (token, json.dumps(_book_json(book))))
                      for token, book in books.items()]
        statements += [("INSERT OR REPLACE INTO sessions VALUES (?, ?)", (s.session_id, json.dumps(_session_json(s))))
                       for s in sessions]
        # An ended session is counted once, on the day (UTC) of its last reading: it outlives the session's
        # row (deleted once redeemed), so the dashboard's per-day figures stay.
        statements += [("INSERT OR IGNORE INTO ended VALUES (?, ?, ?, ?, ?)",
                        (s.session_id, s.charger_id, s.started_at.isoformat(), _utc_day(s.last_at), s.energy_wh))
                       for s in sessions if s.ended]
        self._write(statements)

    def days(self, count: int) -> list[tuple[str, int, int]]:
        """The newest `count` days with ended sessions, oldest first: (YYYY-MM-DD, sessions, Wh delivered)."""
        with self._lock:
            rows = self._db.execute("SELECT day, COUNT(*), SUM(energy_wh) FROM ended GROUP BY day ORDER BY day DESC "
                                    "LIMIT ?", (count,)).fetchall()
        return [(day, sessions, energy) for day, sessions, energy in reversed(rows)]

    def delete_session(self, session_id: str) -> None:
        """Forget a session (redeemed on chain)."""
        self._write([("DELETE FROM sessions WHERE session_id = ?", (session_id,))])

    def load(self) -> tuple[dict[str, VoucherBook], dict[str, Session]]:
        """Every book and session on disk."""
        books = {token: _book_from(json.loads(body)) for token, body in self._db.execute("SELECT * FROM books")}
        sessions = {sid: _session_from(json.loads(body)) for sid, body in self._db.execute("SELECT * FROM sessions")}
        return books, sessions


def _utc_day(at: datetime) -> str:
    """YYYY-MM-DD of a charger's timestamp in UTC (one without a zone is taken as UTC)."""
    return (at.astimezone(timezone.utc) if at.tzinfo is not None else at).date().isoformat()


def _book_json(book: VoucherBook) -> dict[str, Any]:
    terms, newest = book.terms, book.newest
    return {"chain_id": terms.chain_id, "channel_id": terms.channel_id, "key_scheme": terms.voucher_key.scheme,
            "key": terms.voucher_key.key.hex(), "deposit": terms.deposit, "redeemed": terms.redeemed,
            "nonce": terms.nonce, "newest": None if newest is None else
            [newest.channel_id, newest.amount, newest.nonce, newest.signature.hex()]}


def _book_from(data: dict[str, Any]) -> VoucherBook:
    key = PublicKey(int(data["key_scheme"]), bytes.fromhex(data["key"]))
    book = VoucherBook(ChannelTerms(data["chain_id"], data["channel_id"], key, data["deposit"], data["redeemed"],
                                    data["nonce"]))
    if data["newest"] is not None:
        channel_id, amount, nonce, signature = data["newest"]
        book.newest = Voucher(channel_id, amount, nonce, bytes.fromhex(signature))
    return book


def _session_json(s: Session) -> dict[str, Any]:
    return {"session_id": s.session_id, "charger_id": s.charger_id,
            "tariff": [s.tariff.per_kwh_micro, s.tariff.per_minute_micro, s.tariff.per_session_micro],
            "started_at": s.started_at.isoformat(), "meter_start_wh": s.meter_start_wh, "id_token": s.id_token,
            "base_micro": s.base_micro, "meter_wh": s.meter_wh, "last_at": s.last_at.isoformat(), "ended": s.ended,
            "stop_requested": s.stop_requested, "seq_no": s.seq_no, "touched_s": s.touched_s,
            "start_key": s.start_key}


def _session_from(data: dict[str, Any]) -> Session:
    session = Session(data["session_id"], data["charger_id"], Tariff(*data["tariff"]),
                      datetime.fromisoformat(data["started_at"]), data["meter_start_wh"], data["id_token"],
                      data["base_micro"])
    session.meter_wh, session.last_at = data["meter_wh"], datetime.fromisoformat(data["last_at"])
    session.ended, session.stop_requested = data["ended"], data["stop_requested"]
    session.seq_no, session.touched_s, session.start_key = data["seq_no"], data["touched_s"], data["start_key"]
    return session
