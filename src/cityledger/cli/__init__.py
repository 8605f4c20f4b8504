"""The command line: `cityledger` (typer), see cli/main.py."""
