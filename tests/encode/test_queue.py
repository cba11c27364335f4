"""FrameQueue on its own: a consumer in this process reads and releases frames through the real
shared memory and pipe."""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.encode._queue import FrameQueue, FrameQueueReader, QueueFullPolicy


@pytest.fixture
def pair():
    queue = FrameQueue("observation.images.top", (4, 6, 3), maxsize=3, policy=QueueFullPolicy.DROP)
    reader = FrameQueueReader(queue.reader_handle())
    yield queue, reader
    queue.close()


def frame(value: int) -> np.ndarray:
    return np.full((4, 6, 3), value, np.uint8)


def take(reader: FrameQueueReader) -> tuple[int, int, np.ndarray]:
    slot, index = reader.get()
    return slot, index, reader.buffer(index).copy()


def test_frames_arrive_in_order_with_their_content_and_the_last_freed_buffer_is_reused(pair):
    queue, reader = pair
    used = []
    for slot in range(5):  # a consumer that keeps up: one buffer does
        assert queue.offer(slot, frame(slot))
        got_slot, index, data = take(reader)
        assert got_slot == slot and (data == slot).all()
        used.append(index)
        reader.release(index)
    assert len(set(used)) == 1
    # Three waiting: three distinct buffers; the content of each survives until it is released.
    for slot in range(5, 8):
        assert queue.offer(slot, frame(slot))
    taken = [take(reader) for _ in range(3)]
    assert [s for s, _, _ in taken] == [5, 6, 7] and len({i for _, i, _ in taken}) == 3
    assert all((data == s).all() for s, _, data in taken)
    for _, index, _ in taken:
        reader.release(index)
    assert queue.depth() == 0


def test_a_full_queue_drops_and_counts_without_touching_the_waiting_frames(pair):
    queue, reader = pair
    for slot in range(4):  # maxsize 3, plus the one being encoded
        assert queue.offer(slot, frame(slot))
    assert not queue.offer(4, frame(99))
    assert queue.stats().frames_dropped == 1 and queue.stats().frames_in == 5
    got = [take(reader) for _ in range(4)]
    assert [(s, int(d[0, 0, 0])) for s, _, d in got] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    reader.release(got[0][1])
    assert queue.offer(5, frame(5))  # room again: the buffer just released
    slot, index, data = take(reader)
    assert (slot, index) == (5, got[0][1]) and (data == 5).all()


def test_drops_are_counted_each_and_logged_at_most_once_a_second(pair, caplog):
    queue, _ = pair
    for slot in range(4):  # maxsize 3 plus the buffer being encoded: full, nobody reading
        assert queue.offer(slot, frame(slot))
    with caplog.at_level("WARNING", logger="streamrec"):
        for slot in range(4, 54):
            assert not queue.offer(slot, frame(slot))
    assert queue.stats().frames_dropped == 50
    said = [r.getMessage() for r in caplog.records]
    assert said[0] == "Encoder queue full for observation.images.top, dropped 1 frame(s)"
    assert len(said) == 1  # 50 drops in well under a second: one line, the counts are in the stats
