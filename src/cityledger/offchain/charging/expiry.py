"""Sessions that never end: closed after `session_timeout_s` without an event, their newest voucher redeemed.

A charger that lost power or its network for good sends no Ended. After the CSMS's
`session_timeout_s` (config [charging] session_timeout_s, default SESSION_TIMEOUT_S) without an
event, the session is ended at its last reading (the bill is what the meter showed then), the
charger is asked to stop if it is connected, and a redeem round (redeem.py: the node's
`csms.settle` signs a channel_redeem with the operator key) redeems the channel's newest voucher.
The idle clock is the CSMS's own; billing never reads it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from .accounting import Session

if TYPE_CHECKING:
    from .csms import Csms

LOG = logging.getLogger("cityledger.charging")
MAX_EXPIRY_CHECK_S = 60  # how often, at most, idle sessions are looked for (the timeout's quarter if shorter)


def expire_idle(csms: "Csms", now_s: float) -> list[Session]:
    """End every open session idle for `session_timeout_s` at `now_s`; return them (persisted)."""
    closed = []
    for session in list(csms.sessions.values()):
        if session.ended or now_s - session.touched_s < csms.session_timeout_s:
            continue
        session.ended = session.stop_requested = True
        session.touched_s = now_s  # closing is its last event: the vehicle's grace to pay runs from here
        csms.persist(session)
        point = csms.points.get(session.charger_id)
        if point is not None:
            csms._spawn(point.send_stop(session.session_id))
        if session.id_token in csms.vehicles:  # the vehicle is told its bill, and may still pay it
            csms._spawn(csms._tell_vehicle(session))
        LOG.info("session %s closed after %d s without an event: %d Wh, %d micro", session.session_id,
                 csms.session_timeout_s, session.energy_wh, session.cost_micro)
        closed.append(session)
    return closed


async def close_idle(csms: "Csms", now_s: float) -> list[Session]:
    """Expire idle sessions, then redeem their channels' newest vouchers (redeem.py, if `csms.settle` is set)."""
    from .redeem import redeem_round

    closed = expire_idle(csms, now_s)
    if closed:
        await redeem_round(csms, now_s)
    return closed


async def run_expiry(csms: "Csms") -> None:
    """Look for idle sessions until cancelled."""
    interval_s = max(1, min(MAX_EXPIRY_CHECK_S, csms.session_timeout_s // 4))
    while True:
        await asyncio.sleep(interval_s)
        await close_idle(csms, time.time())
