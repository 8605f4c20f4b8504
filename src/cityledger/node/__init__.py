"""Assembling a node: its home folder (config, genesis, key) and the running parts."""
