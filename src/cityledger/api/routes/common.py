"""What every route file shares."""

from __future__ import annotations

# Heights and other integer parameters are int64 in SQLite and CometBFT; past this they are a 400.
MAX_INT64 = 2**63 - 1
