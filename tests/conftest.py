import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import make_chain  # noqa: E402


@pytest.fixture
def chain(tmp_path):
    return make_chain(tmp_path)


@pytest.fixture(autouse=True, scope="session")
def small_registries():
    """Offices written by `init` in tests get registries of 64: a city-sized one takes minutes to create."""
    from cityledger.node import issuers

    issuers.DEFAULT_REGISTRY_SIZE = 64
    yield
