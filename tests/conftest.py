import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from utils import clear_decode_cache  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_decode_cache():
    yield
    clear_decode_cache()
