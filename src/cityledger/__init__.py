"""cityledger: a privacy-first consortium ledger for a smart city."""

__version__ = "0.1.0"
