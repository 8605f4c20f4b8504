"""Waiting for commits without holding threads: one cheap height poller per event loop.

A waiter sleeps on an asyncio.Event that the poller sets whenever the committed height moves; the
poller runs only while someone waits, so an idle node costs nothing, and a thousand waiters cost
one poll every few milliseconds rather than a thousand.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable

POLL_S = 0.004


@dataclass
class _LoopWatch:
    height: int
    event: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: int = 0
    task: asyncio.Task | None = None


class BlockWatch:
    """Wakes coroutines when a new block is committed."""

    def __init__(self, read_height: Callable[[], int]) -> None:
        self._read = read_height
        self._loops: dict[asyncio.AbstractEventLoop, _LoopWatch] = {}

    async def wait_past(self, height: int, timeout_s: float) -> None:
        """Return once the committed height differs from `height`, or after timeout_s."""
        loop = asyncio.get_running_loop()
        watch = self._loops.get(loop)
        if watch is None or watch.task is None or watch.task.done():
            watch = _LoopWatch(self._read())
            self._loops[loop] = watch
            watch.task = loop.create_task(self._poll(loop, watch))
        if self._read() != height:
            return
        watch.waiters += 1
        try:
            await asyncio.wait_for(watch.event.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            watch.waiters -= 1

    async def _poll(self, loop: asyncio.AbstractEventLoop, watch: _LoopWatch) -> None:
        try:
            while True:
                await asyncio.sleep(POLL_S)
                now = self._read()
                if now != watch.height:
                    watch.height = now
                    event, watch.event = watch.event, asyncio.Event()
                    event.set()
                if watch.waiters <= 0:
                    return
        finally:
            if self._loops.get(loop) is watch:
                del self._loops[loop]


async def wait_for_commit(is_pending: Callable[[bytes], bool], read_height: Callable[[], int], watch: BlockWatch,
                          tx_id: bytes, timeout_s: float) -> bool:
    """Wait while the tx is pending; True if it is no longer pending (committed or dropped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        height = read_height()
        if not is_pending(tx_id):
            return True
        left = deadline - loop.time()
        if left <= 0:
            return False
        await watch.wait_past(height, left)
