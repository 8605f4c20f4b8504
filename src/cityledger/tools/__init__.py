"""Operator tools: benchmarks and diagnostics."""
