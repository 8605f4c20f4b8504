"""Domain types (core/types.py) in messages: same wire encoding as their base types."""

import msgspec
import pytest

from cityledger.core.encoding import DecodeError, decoder, encode
from cityledger.core.types import Address, Amount, Height
from cityledger.modules.bank.messages import Transfer
from cityledger.modules.devices.messages import DeviceRecord
from cityledger.modules.governance.messages import Proposal

ALICE = Address(b"\x01" * 20)
BOB = Address(b"\x02" * 20)


def test_record_with_domain_types_encodes_as_plain_array():
    proposal = Proposal(id=7, proposer=ALICE, action=b"act", submit_height=Height(3), expiry_height=Height(103),
                        approvals=[ALICE, BOB], status="open", outcome="")
    plain = [7, b"\x01" * 20, b"act", 3, 103, [b"\x01" * 20, b"\x02" * 20], "open", ""]
    assert encode(proposal) == msgspec.msgpack.encode(plain)
    assert decoder(Proposal).decode(encode(proposal)) == proposal


def test_device_record_round_trips():
    record = DeviceRecord(did="did:city:x", kind="meter", model="m1", manufacturer="did:city:m", owner=Address(b""),
                          pending_owner=BOB, epoch=0, status="active", registered_height=Height(1),
                          updated_height=Height(2))
    assert decoder(DeviceRecord).decode(encode(record)) == record


def test_invalid_amount_of_wrong_type_rejected():
    bad = msgspec.msgpack.encode(["bank/1.0/transfer", b"\x02" * 20, "100"])
    with pytest.raises(DecodeError, match=r"Expected `int`, got `str`"):
        decoder(Transfer).decode(bad)
    assert decoder(Transfer).decode(encode(Transfer(to=BOB, amount=Amount(100)))).amount == 100
