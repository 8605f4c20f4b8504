"""Domain modules: each one folder with messages, keys, errors, handlers, queries, genesis, invariants."""
