"""What identity offers other modules: the real implementation of their expected.py Protocols.

node/modules.py passes KEEPER to the modules that need identity (devices.new_module), so those
modules import only identity's messages, types and errors, and every write to identity's keys
happens here, in identity's own code.
"""

from __future__ import annotations

from .handlers import create_did_record, deactivate, get_did, is_accredited, keys_for
from .presentations import verify_presentation


class IdentityKeeper:
    """DID records, the trusted-issuer registry and presentation checks, for other modules."""

    get_did = staticmethod(get_did)
    keys_for = staticmethod(keys_for)
    is_accredited = staticmethod(is_accredited)
    create_did_record = staticmethod(create_did_record)
    deactivate = staticmethod(deactivate)
    verify_presentation = staticmethod(verify_presentation)


KEEPER = IdentityKeeper()
