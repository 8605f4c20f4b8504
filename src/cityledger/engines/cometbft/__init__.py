"""The CometBFT engine: the app behind CometBFT's ABCI 2.0 socket protocol (multi-validator, BFT).

abci_server serves an app/abc.py Application to a `cometbft node`; the protobuf stubs it uses are
generated at set-up into proto_gen/ by scripts/gen_proto.sh.
"""
