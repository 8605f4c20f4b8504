"""Editing the config.toml that `cometbft init` writes, keeping its comments and layout."""

from __future__ import annotations

import re
from pathlib import Path

ConfigValue = str | int | bool
_SECTION = re.compile(r"^\s*\[([A-Za-z0-9_.]+)\]\s*$")
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_]+)(\s*=\s*)(.*)$")


def compute_toml_value(value: ConfigValue) -> str:
    """Render a str, int or bool as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def compute_config_text(text: str, values: dict[str, ConfigValue]) -> str:
    """Set 'section.key' (or 'key' for the top level) in config.toml text; every key must exist."""
    missing = set(values)
    section = ""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        header = _SECTION.match(line)
        if header:
            section = header.group(1)
            continue
        match = _KEY.match(line)
        if not match:
            continue
        name = f"{section}.{match.group(2)}" if section else match.group(2)
        if name in values:
            indent, key, equals = match.group(1), match.group(2), match.group(3)
            lines[i] = f"{indent}{key}{equals}{compute_toml_value(values[name])}\n"
            missing.discard(name)
    if missing:
        raise KeyError(f"config.toml has no key(s) {sorted(missing)}")
    return "".join(lines)


def set_config_values(path: Path, values: dict[str, ConfigValue]) -> None:
    """Rewrite the config.toml at path with values set (see compute_config_text)."""
    path.write_text(compute_config_text(path.read_text(), values))
