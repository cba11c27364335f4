"""Many episodes in one recording, frames fed as fast as the encoders take them."""

from __future__ import annotations

import os

import psutil
import pytest

from helpers.recording import FPS, check_identity, features, frame_for
from streamrec import DatasetRecorder


@pytest.mark.slow
@pytest.mark.parametrize("streaming", [True, False])
def test_a_hundred_fast_fed_episodes_stay_exact_and_flat(tmp_path, streaming):
    # Fed faster than real time, SVT-AV1's default random-access structure emitted frames out of
    # order within a few dozen episodes; with streamrec's settings every row must still be its
    # own frame. The same run checks that nothing grows per episode: descriptors, threads, RSS.
    # The PNG path (streaming_encoding=False) runs the same processes plus a PNG spill and a
    # save thread per camera, and encodes at every save: it must stay as flat.
    rec = DatasetRecorder.create(tmp_path / "ds", FPS, features(), queue_full_policy="block",
                                 streaming_encoding=streaming)
    me = psutil.Process()
    lengths = [20 + e % 7 for e in range(100)]
    samples = {}
    ident = 0
    for e, n in enumerate(lengths):
        for _ in range(n):
            rec.add_frame(frame_for(ident, 0, float(ident)))
            ident += 1
        rec.save_episode()
        if e in (9, 99):
            children = me.children()
            samples[e] = (len(os.listdir("/proc/self/fd")), me.num_threads(),
                          sum(c.num_fds() for c in children), max(c.memory_info().rss for c in children))
    rec.finalize()
    (fds10, threads10, child_fds10, rss10), (fds100, threads100, child_fds100, rss100) = samples[9], samples[99]
    assert (fds100, threads100) == (fds10, threads10)
    # An encoder may or may not have opened its next episode's spool when we look: one file
    # either way per camera. A leak of one per episode would show as 100 here.
    assert child_fds100 <= child_fds10 + 2, f"encoder processes hold {child_fds100 - child_fds10} more descriptors"
    assert rss100 - rss10 < 20 * 2**20, \
        f"an encoder process grew by {(rss100 - rss10) / 2**20:.0f} MB in 90 episodes"
    check_identity(tmp_path / "ds", lengths)
