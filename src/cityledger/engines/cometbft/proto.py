"""The generated ABCI protobuf module, with a clear message when set-up has not generated it.

The stubs are generated at set-up by scripts/gen_proto.sh from the .proto files of the installed
CometBFT module; they are not committed.
"""

from __future__ import annotations

try:
    from cityledger.engines.cometbft.proto_gen.tendermint.abci import types_pb2 as abci
    from cityledger.engines.cometbft.proto_gen.tendermint.crypto import keys_pb2 as crypto_keys
    from cityledger.engines.cometbft.proto_gen.tendermint.crypto import proof_pb2 as crypto_proof
    from cityledger.engines.cometbft.proto_gen.tendermint.types import canonical_pb2 as types_canonical
    from cityledger.engines.cometbft.proto_gen.tendermint.types import types_pb2 as types_types
    from cityledger.engines.cometbft.proto_gen.tendermint.types import validator_pb2 as types_validator
    from cityledger.engines.cometbft.proto_gen.tendermint.version import types_pb2 as version_types
except ImportError as exc:  # pragma: no cover - depends on set-up
    raise ImportError(
        "the CometBFT protobuf stubs are missing: run `make install` "
        "(or `bash scripts/install_cometbft.sh && bash scripts/gen_proto.sh <python>`)"
    ) from exc

__all__ = ["abci", "crypto_keys", "crypto_proof", "types_canonical", "types_types", "types_validator",
           "version_types"]
