"""The passport service hosted by a node: battery passports, encrypted per tier, under its home.

    <home>/passports/            the PassportStore (SQLite index and access log, one blob per tier version)
    <home>/passport-master.key   the store's master key (32 random bytes, mode 0600), kept out of the store's folder

The master key wraps every per-tier key; a copy of passports/ without it opens nothing.
"""

from __future__ import annotations

from pathlib import Path

from ..offchain.passport import PassportStore, load_or_create_master_key

PASSPORTS_DIR = "passports"
PASSPORT_KEY_FILE = "passport-master.key"


def open_passport_store(home: Path) -> PassportStore:
    """The node's passport store, its master key created (0600, core/files.write_secret_file) on first use."""
    home = Path(home)
    return PassportStore(home / PASSPORTS_DIR, load_or_create_master_key(home / PASSPORT_KEY_FILE))
