"""The valid BatteryPass 6.1.0 example shared by the passport tests."""

import copy
import json
from pathlib import Path

EXAMPLE_PATH = Path(__file__).parent / "data" / "battery_pass_example.json"
_EXAMPLE = json.loads(EXAMPLE_PATH.read_text(encoding="utf-8"))
PASSPORT_ID = _EXAMPLE["metadata"]["passportIdentifier"]


def example() -> dict:
    """A fresh copy of the example document (every field of the schema filled in)."""
    return copy.deepcopy(_EXAMPLE)


def leaves(value, path="$"):
    """(concrete path, value) of every scalar and every array of scalars in `value`."""
    if isinstance(value, dict):
        for key, child in value.items():
            yield from leaves(child, f"{path}.{key}")
    elif isinstance(value, list) and any(isinstance(item, (dict, list)) for item in value):
        for index, item in enumerate(value):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path, value
