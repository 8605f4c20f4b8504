"""Regenerate tests/vectors/encoding.json (run only when the format changes on purpose)."""

import json
from pathlib import Path

from cityledger.core.encoding import encode
from cityledger.core.keys import make_signer
from cityledger.core.tree import compute_root
from cityledger.core.tx import build_tx
from cityledger.modules.bank import MultiSend, Output, Transfer
from cityledger.core.accounts import account_key, encode_account

from helpers import CHAIN_ID, fixed_key


def build() -> dict:
    k0, k1, k2 = fixed_key(0), fixed_key(1), fixed_key(2)
    signer = make_signer(2, [k0.public_key, k1.public_key, k2.public_key])
    return {
        "chain_id": CHAIN_ID,
        "keys": {f"key{i}": {"seed": k.seed.hex(), "public_key": k.public_key.key.hex(), "address": k.address().hex()}
                 for i, k in enumerate((k0, k1, k2))},
        "messages": {
            "transfer": encode(Transfer(k1.address(), 1_500_000)).hex(),
            "multi_send": encode(MultiSend([Output(k1.address(), 1), Output(k2.address(), 2**40)])).hex(),
        },
        "txs": {
            "transfer_nonce0": build_tx(CHAIN_ID, [k0], 0, [Transfer(k1.address(), 1_500_000)]).hex(),
            "transfer_nonce300_expiry": build_tx(CHAIN_ID, [k0], 300, [Transfer(k1.address(), 7)],
                                                 expiry_height=1000).hex(),
            "multisig_2_of_3": build_tx(CHAIN_ID, [k0, k2], 1, [Transfer(k1.address(), 9)], signer=signer).hex(),
        },
        "multisig_address": __import__("cityledger.core.keys", fromlist=["x"]).compute_address(signer).hex(),
        "state_keys": {"account_key0": account_key(k0.address()).hex()},
        "state_values": {"account_nonce3_balance1500000": encode_account(3, 1_500_000).hex()},
        "tree_roots": {
            "empty": compute_root({}).hex(),
            "one": compute_root({b"a": b"1"}).hex(),
            "three": compute_root({b"a": b"1", b"b": b"2", b"c": b"3"}).hex(),
        },
    }


if __name__ == "__main__":
    out = Path(__file__).parent / "vectors" / "encoding.json"
    out.write_text(json.dumps(build(), indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
