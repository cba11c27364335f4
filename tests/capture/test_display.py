"""The live display: `DisplayWorker` (bounded queue, drop oldest, its thread) and `RerunSink`."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from streamrec import ConfigError
from streamrec.capture._display import (
    THREAD_NAME,
    DisplayConfig,
    DisplayError,
    DisplayTick,
    DisplayWorker,
    RerunSink,
    import_rerun,
    rrd_path_for,
    shrink,
)

needs_rerun = pytest.mark.skipif(importlib.util.find_spec("rerun") is None,
                                 reason="rerun-sdk not installed (pip install 'streamrec[display]')")
JOIN_S = 30.0


class GatedSink:
    """A sink that keeps what it is given, and can be held inside `log()` to play a slow viewer."""

    def __init__(self) -> None:
        self.ticks: list[DisplayTick] = []
        self.open = threading.Event()
        self.open.set()
        self.inside = threading.Event()
        self.closed = 0
        self.fail_with: BaseException | None = None

    def log(self, tick: DisplayTick) -> None:
        self.inside.set()
        assert self.open.wait(JOIN_S), "the test never let the sink go on"
        if self.fail_with is not None:
            raise self.fail_with
        self.ticks.append(tick)

    def close(self) -> None:
        self.closed += 1


def offer(worker: DisplayWorker, i: int, images: dict | None = None) -> None:
    worker.offer(index=i, episode_index=0, frame_index=i, capture_time_s=1.7e9 + i / 30,
                 images=images or {}, values={"observation.state": np.full(14, i, np.float32)})


def display_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == THREAD_NAME]


def test_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"DisplayConfig\.image_hz = 0: must be a number > 0"):
        DisplayConfig(image_hz=0)
    with pytest.raises(ConfigError, match=r"DisplayConfig\.queue_maxsize = 0: must be an integer >= 1"):
        DisplayConfig(queue_maxsize=0)
    with pytest.raises(ConfigError, match=r"DisplayConfig\.jpeg_quality = 101: must be an integer from 1 to 100"):
        DisplayConfig(jpeg_quality=101)
    worker = DisplayWorker(GatedSink())
    worker.start()
    with pytest.raises(RuntimeError, match=r"already started"):
        worker.start()
    worker.stop()
    assert worker.join(JOIN_S)


def test_a_slow_display_drops_the_oldest_ticks_instead_of_blocking_capture() -> None:
    sink = GatedSink()
    worker = DisplayWorker(sink, DisplayConfig(queue_maxsize=4))
    worker.start()
    assert display_threads() == [THREAD_NAME]
    sink.open.clear()
    offer(worker, 0)
    assert sink.inside.wait(JOIN_S)  # the thread holds tick 0 inside log(), stuck on a slow viewer
    for i in range(1, 11):
        offer(worker, i)  # each returns at once: none waits for the display thread
    assert (worker.offered, worker.dropped, worker.max_depth) == (11, 6, 4)

    sink.open.set()
    worker.stop()
    worker.stop()  # safe to repeat
    assert worker.join(JOIN_S)
    assert [t.index for t in sink.ticks] == [0, 7, 8, 9, 10]  # the newest kept, in order
    assert worker.logged == 5 and sink.closed == 1
    assert display_threads() == [] and worker.failure is None
    offer(worker, 11)  # after stop: ignored, not an error
    assert worker.offered == 11


def test_images_are_throttled_shrunk_and_copied() -> None:
    sink = GatedSink()
    worker = DisplayWorker(sink, DisplayConfig(image_hz=1e-6, max_width=64))  # only the first tick gets images
    worker.start()
    image = np.arange(120 * 160 * 3, dtype=np.uint32).reshape(120, 160, 3).astype(np.uint8)
    offer(worker, 0, {"observation.images.top": image})
    offer(worker, 1, {"observation.images.top": image})
    image[:] = 0  # a source reuses its buffer; the display has its own copy
    worker.stop()
    assert worker.join(JOIN_S)
    first, second = sink.ticks
    shown = first.images["observation.images.top"]
    assert shown.shape == (40, 54, 3) and shown.flags.c_contiguous  # every 3rd pixel: 160 / 3 <= 64
    np.testing.assert_array_equal(shown, np.arange(120 * 160 * 3).reshape(120, 160, 3)[::3, ::3].astype(np.uint8))
    assert second.images == {}
    np.testing.assert_array_equal(second.values["observation.state"], np.full(14, 1, np.float32))
    assert shrink(image, 160).shape == image.shape


def test_a_failing_sink_surfaces_at_the_next_offer() -> None:
    sink = GatedSink()
    sink.fail_with = ValueError("viewer gone")
    worker = DisplayWorker(sink)
    worker.start()
    offer(worker, 0)
    assert worker.join(JOIN_S)  # the thread ended on the error, after closing the sink
    assert sink.closed == 1 and display_threads() == []
    with pytest.raises(DisplayError, match=r"live display stopped: viewer gone") as info:
        offer(worker, 1)
    assert isinstance(info.value.__cause__, ValueError)
    worker.stop()
    assert worker.join(JOIN_S)


def test_stop_without_start_is_safe_and_takes_no_more_ticks() -> None:
    # The record command stops the display on any error, also one before it started.
    sink = GatedSink()
    worker = DisplayWorker(sink)
    worker.stop()
    worker.stop()  # twice is safe
    offer(worker, 0)
    assert worker.offered == 0 and worker.dropped == 0  # a stopped worker queues nothing
    assert worker.join(0) and display_threads() == []
    assert sink.ticks == [] and sink.closed == 0  # never started: nothing was opened, so nothing to close


def test_rrd_path_is_next_to_the_dataset() -> None:
    assert rrd_path_for("datasets/demo") == Path("datasets/demo.rrd")
    assert rrd_path_for("/data/run/") == Path("/data/run.rrd")


def test_without_rerun_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rerun", None)
    with pytest.raises(ConfigError, match=r"needs rerun-sdk, which is not installed .*pip install "
                                          r"'streamrec\[display\]'"):
        import_rerun()


@needs_rerun
def test_rerun_sink_writes_an_rrd_that_reads_back(tmp_path: Path) -> None:
    from rerun.chunk import RrdReader

    rrd = tmp_path / "display.rrd"
    names = [f"joint_{i}" for i in range(14)]
    sink = RerunSink(rrd_path=rrd, value_names={"observation.state": names, "action": names})
    worker = DisplayWorker(sink, DisplayConfig(image_hz=1e6))  # an image every tick
    worker.start()
    image = np.zeros((96, 128, 3), np.uint8)
    for i in range(5):
        image[:] = 40 * i
        worker.offer(index=i, episode_index=0, frame_index=i, capture_time_s=1.7e9 + i / 30,
                     images={"observation.images.top": image, "observation.images.wrist": image},
                     values={"observation.state": np.full(14, i, np.float32), "action": np.zeros(14, np.float32)})
    worker.stop()
    assert worker.join(JOIN_S) and worker.failure is None
    assert worker.logged + worker.dropped == 5

    chunks = [c for c in RrdReader(rrd).stream() if not c.is_static]
    rows: dict[str, int] = {}
    for chunk in chunks:
        rows[chunk.entity_path] = rows.get(chunk.entity_path, 0) + chunk.num_rows
    assert rows == {"/observation.images.top": worker.logged, "/observation.images.wrist": worker.logged,
                    "/observation.state": worker.logged, "/action": worker.logged}
    assert {"index", "episode_index", "frame_index", "capture_time"} <= set(chunks[0].timeline_names)
