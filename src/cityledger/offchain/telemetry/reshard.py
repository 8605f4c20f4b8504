"""Changing `[telemetry] gateways`: the devices' last sequence numbers follow them to their new gateway.

    carried = carry_last_seq(telemetry_folder, shards)   # before the gateway (or its shards) starts

A device's messages go to gateway device_shard(did, N), which alone keeps its last sequence number.
When N changes, a device's new gateway would know nothing of it and take the next message, even an
old one replayed, as a new device's. So before the gateways of layout N start, every other layout's
folder (`gateway/` for N = 1, `gateway-k-of-M/` for M != N) is read, its `last_seq` rows and the
sequence numbers of the batches its journal holds unfiled, and each device's highest number is written
into the state of the device's gateway under N, unless that one already holds a higher number. Taking
the highest makes this safe to run at every start, whatever came before.

What it does not do: file or anchor another layout's records. Records it journalled and did not file,
or received in an interval it did not anchor, are filed and anchored only by starting that layout
again (docs/SCALING.md); carry_last_seq returns the folders holding such records so the node can
say so.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .broker import device_shard
from .gateway import GatewayState
from .journal import Journal

SINGLE_FOLDER = "gateway"  # the one gateway's folder (gateways = 1), under the node's telemetry folder
_SHARD_FOLDER = re.compile(r"gateway-(\d+)-of-(\d+)")


def layout_folder(telemetry: Path, shard: int, shards: int) -> Path:
    """Where gateway `shard` of `shards` keeps its state and journal."""
    return telemetry / (SINGLE_FOLDER if shards == 1 else f"gateway-{shard}-of-{shards}")


@dataclass(frozen=True)
class Carried:
    """What carry_last_seq did: devices whose number it wrote, and the other layouts' folders read,
    those of them holding records not yet filed or anchored named apart."""

    devices: int
    folders: tuple[str, ...]
    unfinished: tuple[str, ...]


def carry_last_seq(telemetry: Path, shards: int) -> Carried:
    """Write every device's highest sequence number seen by any other layout into its gateway's
    state under `shards` (only where higher than what that state holds)."""
    active = {layout_folder(telemetry, k, shards).name for k in range(shards)}
    highest: dict[str, int] = {}
    folders, unfinished = [], []
    for folder in _other_layouts(telemetry, active):
        seen, pending = _read_layout(folder)
        for device, seq in seen.items():
            if seq > highest.get(device, -1):
                highest[device] = seq
        folders.append(folder.name)
        if pending:
            unfinished.append(folder.name)
    by_shard: dict[int, list[tuple[str, int]]] = {}
    for device, seq in sorted(highest.items()):
        by_shard.setdefault(device_shard(device, shards), []).append((device, seq))
    written = 0
    for shard, rows in sorted(by_shard.items()):
        folder = layout_folder(telemetry, shard, shards)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        state = GatewayState(folder / "state.sqlite")
        try:
            written += state.raise_last_seq(rows)
        finally:
            state.close()
    return Carried(written, tuple(folders), tuple(unfinished))


def _other_layouts(telemetry: Path, active: set[str]) -> list[Path]:
    if not telemetry.is_dir():
        return []
    return sorted(path for path in telemetry.iterdir()
                  if path.is_dir() and path.name not in active and (path / "state.sqlite").exists()
                  and (path.name == SINGLE_FOLDER or _SHARD_FOLDER.fullmatch(path.name)))


def _read_layout(folder: Path) -> tuple[dict[str, int], bool]:
    """A gateway folder's last sequence numbers (its state's, and its unfiled journal batches'), and
    whether it holds records not yet filed or anchored."""
    db = sqlite3.connect(f"file:{folder / 'state.sqlite'}?mode=ro", uri=True)
    try:
        seen = dict(db.execute("SELECT device, seq FROM last_seq").fetchall())
        row = db.execute("SELECT batch FROM journal_applied WHERE id = 0").fetchone()
        open_intervals = db.execute("SELECT COUNT(*) FROM open_intervals").fetchone()[0]
    finally:
        db.close()
    pending = open_intervals > 0
    if (folder / "journal").is_dir():
        journal = Journal(folder / "journal", 0 if row is None else row[0])
        try:
            for entry in journal.replay():
                pending = True
                for record in entry.records:
                    header = record.stored.header
                    seen[header.device] = max(seen.get(header.device, -1), header.seq)
        finally:
            journal.close()
    return seen, pending
