"""What devices offers other modules: the real implementation of their expected.py Protocols.

node/modules.py passes KEEPER to the modules that ask who owns a device (payments.new_module).
"""

from __future__ import annotations

from .handlers import get_device


class DevicesKeeper:
    """Device records, read-only, for other modules."""

    get_device = staticmethod(get_device)


KEEPER = DevicesKeeper()
