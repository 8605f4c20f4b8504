"""The deterministic state machine: check_tx, finalize_block, commit, query (ABCI 2.0 semantics)."""
