import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers.frames import clear_decode_cache  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_decode_cache():
    yield
    clear_decode_cache()


@pytest.fixture(autouse=True, scope="session")
def _private_probe_cache(tmp_path_factory):
    """Encoder probe results go to a cache of this test run (and its encoder processes), never to ~/.cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        yield
