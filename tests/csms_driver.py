"""A CSMS with its SQLite store in a process of its own, for the kill-and-restart test (no tests here).

    python tests/csms_driver.py <folder> <vehicle key hex> <channel id>

Prints "<port> <id token>" once listening, then serves until killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from cityledger.core.keys import SCHEME_P256, PrivateKey
from cityledger.offchain.charging import ChannelTerms, ChargerRegistry, Csms, Tariff
from cityledger.offchain.charging.store import CsmsStore

TARIFF = Tariff(per_kwh_micro=300_000, per_minute_micro=10_000, per_session_micro=50_000)
OPERATOR = PrivateKey(1, b"\x07" * 32)


async def main(folder: Path, vehicle_hex: str, channel_id: int) -> None:
    vehicle = PrivateKey(SCHEME_P256, bytes.fromhex(vehicle_hex))
    csms = Csms(ChargerRegistry(folder / "chargers.json"), TARIFF, OPERATOR, margin_micro=2_000_000,
                store=CsmsStore(folder / "csms.sqlite"))
    token = csms.authorize_vehicle(ChannelTerms("city-test", channel_id, vehicle.public_key, 50_000_000))
    port = await csms.start("127.0.0.1", 0)
    print(port, token, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
