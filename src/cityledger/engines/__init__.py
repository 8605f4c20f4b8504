"""Engines drive the app: solo (in-process blocks, the default) and cometbft (multi-validator)."""
