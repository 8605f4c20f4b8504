import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import make_chain  # noqa: E402


@pytest.fixture
def chain(tmp_path):
    return make_chain(tmp_path)
