import psutil
import pytest


@pytest.fixture
def no_leftover_processes():
    """Ray must be shut down by the operation (or the test): no process it started may outlive the test."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    import time

    deadline = time.monotonic() + 15
    while True:
        left = [p for p in psutil.Process().children(recursive=True)
                if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"processes left behind: {[(p.pid, p.name()) for p in left]}"
