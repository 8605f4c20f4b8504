"""Simulated city traffic (Eclipse SUMO) that drives cityledger only as its vehicles and owners would:
through offchain device-side code and the SDK, never the node's internals (docs/DRIVING_SCORE.md,
"Simulated traffic")."""
