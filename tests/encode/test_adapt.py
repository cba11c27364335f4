"""Adaptive overload: the steps it takes, and that a camera that changed settings still has every row's frame."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import av
import pytest

from helpers.frames import episodes, frames_of_episode, id_frame, read_id
from streamrec import DatasetRecorder, EncoderConfig, verify
from streamrec._platform import available_cpus
from streamrec.encode._adapt import (
    CHECK_AFTER_SLOTS,
    GOT_MARGIN,
    HOLD_S,
    SETTLE_S,
    CpuCheck,
    OverloadWatch,
    fewer_threads,
    fitting_setting,
)
from streamrec.encode._codecs import compiled_in, faster_encoder, open_codec
from streamrec.encode._priority import demote_current_thread, realtime_threads

H, W = 240, 320
_CRF = 1
"""Near lossless. After a long run of one repeated frame (what drops make), SVT-AV1 at crf 15 and 30
showed the next new frame half-updated for one frame (seen here), so its identity was misread."""
CAMERAS = ("observation.images.a", "observation.images.b")


def test_faster_encoder_steps_through_presets_then_codec():
    steps = []
    config = EncoderConfig(vcodec="libsvtav1", preset=4, crf=30, extra_options={"svtav1-params": "tune=0"})
    while config is not None:
        steps.append((config.encoder, config.effective_preset, config.crf))
        config = faster_encoder(config)
    expected = [("libsvtav1", 4, 30), ("libsvtav1", 8, 30), ("libsvtav1", 10, 30), ("libsvtav1", 12, 30)]
    if compiled_in("libx264"):
        expected += [("libx264", "veryfast", 23), ("libx264", "superfast", 23), ("libx264", "ultrafast", 23)]
    assert steps == expected


def test_faster_codec_does_not_carry_the_other_encoders_options():
    if not compiled_in("libx264"):
        pytest.skip("this PyAV build has no libx264 (the codec adaptive overload switches to)")
    faster = faster_encoder(EncoderConfig(vcodec="libsvtav1", extra_options={"svtav1-params": "tune=0"}, g=4))
    assert (faster.encoder, faster.extra_options, faster.g) == ("libx264", {}, 4)


def test_the_fastest_setting_has_no_faster_one():
    assert faster_encoder(EncoderConfig(vcodec="libx264", preset="ultrafast")) is None


@pytest.mark.parametrize(("current", "cpus", "cameras", "expected"), [
    (None, 2, 2, 1),     # codec default (a thread per CPU) in each of two cameras on two CPUs
    (None, 2, 1, None),  # one camera may use every CPU
    (1, 2, 2, None),     # already at its share
    (8, 4, 2, 2),
    (2, 8, 2, None),     # fits
])
def test_fewer_threads(current, cpus, cameras, expected):
    assert fewer_threads(current, cpus, cameras) == expected


def test_watch_fires_after_the_hold_and_waits_after_a_step():
    watch = OverloadWatch(queue_size=30)
    assert watch.high_water == 10
    assert not watch.overloaded(20, 0.0)
    assert not watch.overloaded(20, HOLD_S / 2)
    assert not watch.overloaded(10, HOLD_S * 0.9)  # at the mark is not above it: the hold starts again
    assert not watch.overloaded(20, 1.0)
    assert watch.overloaded(20, 1.0 + HOLD_S)
    assert watch.above_s == pytest.approx(HOLD_S / 2 + HOLD_S)  # the time above the mark, summed
    watch.settle(2.0)
    assert not watch.overloaded(30, 2.0 + HOLD_S)  # settling: neither a step nor counted
    assert not watch.overloaded(30, 2.0 + SETTLE_S + 0.01)
    assert watch.overloaded(30, 2.0 + SETTLE_S + HOLD_S + 0.02)
    assert watch.above_s == pytest.approx(HOLD_S / 2 + HOLD_S + HOLD_S + 0.01)
    watch.reset()
    assert watch.above_s == 0 and not watch.overloaded(30, 10.0)


def test_on_by_default_for_streaming_only(tmp_path):
    streaming = DatasetRecorder.create(tmp_path / "a", 30, _features(1))
    png = DatasetRecorder.create(tmp_path / "b", 30, _features(1), streaming_encoding=False)
    try:
        assert streaming.config.adapt_on_overload and streaming._encoders.workers[CAMERAS[0]]._spec.adapt
        assert png.config.adapt_on_overload and not png._encoders.workers[CAMERAS[0]]._spec.adapt
    finally:
        streaming.finalize()
        png.finalize()


def _features(cameras: int) -> dict:
    return {k: {"dtype": "video", "shape": [H, W, 3], "names": None} for k in CAMERAS[:cameras]}


def _encode_rate(config: EncoderConfig, threads: int) -> float:
    """Frames per second this machine encodes the test frames at with `config`, alone.

    In a thread of its own, demoted like an encoder process's: as root SVT-AV1 would otherwise make
    the thread that opens it real-time, and this one is the test process's.
    """
    rate = []

    def measure() -> None:
        demote_current_thread()
        ctx = open_codec(config, W, H, 30, threads)
        frames = [av.VideoFrame.from_ndarray(id_frame(i, H, W), format="rgb24") for i in range(30)]
        t = time.perf_counter()
        for i, f in enumerate(frames):
            f.pts = i
            ctx.encode(f)
        ctx.encode(None)
        rate.append(len(frames) / (time.perf_counter() - t))

    thread = threading.Thread(target=measure)
    thread.start()
    thread.join()
    return rate[0]


def _record_overloaded(rec: DatasetRecorder, cameras: int, rate: float, seconds: float, first_id: int):
    """Feed frames at `rate` per second (well above what the encoders do) for `seconds`."""
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for i in range(n):
        frame = id_frame(first_id + i, H, W)
        rec.add_frame({k: frame for k in CAMERAS[:cameras]} | {"task": "t"})
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.perf_counter()))
    return rec.save_episode()


def _check_rows(root: Path, cameras: int, first_ids: list[int], inexact: frozenset[int] = frozenset()) -> None:
    """Each row shows its own frame, or (dropped) the frame before it: never a later or a shifted one.

    `inexact`: SVT-AV1 episodes with drops. SVT-AV1 (preset 12) now and then decodes a
    frame that differs much from the one before with a block still showing the old one (seen here
    in a bare encode loop at crf 30, and through the recorder at crf 1), so a row's identity reads
    as a mix of two frames'. There only the row count and the first frame are checked.
    """
    for ep, first_id in zip(episodes(root), first_ids, strict=True):
        for key in CAMERAS[:cameras]:
            ids = [read_id(f) for f in frames_of_episode(root, ep, key, 30)]
            rows = list(range(first_id, first_id + ep["length"]))
            assert len(ids) == len(rows) and ids[0] == first_id
            if ep["episode_index"] not in inexact:
                assert all(i <= r for i, r in zip(ids, rows)), f"{key} episode {ep['episode_index']}: a later frame"
                assert ids == sorted(ids)
                kept = sum(i == r for i, r in zip(ids, rows))
                assert kept == ep["length"] - ep[f"videos/{key}/dropped_frames"]


def test_fewer_threads_at_once_keeps_every_row(tmp_path):
    cpus = available_cpus()
    threads = 2 * cpus  # more than two cameras' share on any machine
    if fewer_threads(threads, cpus, 2) is None:
        pytest.skip(f"{cpus} CPU: two cameras cannot have fewer than one thread each")
    # x264: its frames read back exactly (see _check_rows), and the restart is the same for every encoder.
    config = EncoderConfig(vcodec="libx264", preset="veryfast", crf=_CRF)
    rate = 3 * _encode_rate(config, threads)
    root = tmp_path / "ds"
    rec = DatasetRecorder.create(root, 30, _features(2), camera_encoder=config, encoder_threads=threads,
                                 encoder_queue_maxsize=4, adapt_on_overload=True)
    report = _record_overloaded(rec, 2, rate, 1.5, 0)
    rec.finalize()
    for key in CAMERAS:
        first = report.cameras[key].adaptations[0]
        share = fewer_threads(threads, cpus, 2)
        assert (first.effective, first.change) == ("now", f"encoder_threads {threads} -> {share}")
        assert first.queue_depth > 1 and first.queue_size == 4
    _check_rows(root, 2, [0])
    assert realtime_threads() == []  # the rate measurement left no real-time thread behind
    assert verify(root).codes <= {"system_overloaded"}  # the drops themselves, nothing broken


def test_faster_codec_from_the_next_episode_in_a_new_file(tmp_path):
    if not compiled_in("libx264"):
        pytest.skip("this PyAV build has no libx264 (the codec adaptive overload switches to)")
    config = EncoderConfig(vcodec="libsvtav1", crf=_CRF)  # preset 12: its next step is x264
    rate = 3 * _encode_rate(config, 1)
    root = tmp_path / "ds"
    rec = DatasetRecorder.create(root, 30, _features(1), camera_encoder=config, encoder_threads=1,
                                 encoder_queue_maxsize=4, adapt_on_overload=True)
    first = _record_overloaded(rec, 1, rate, 1.5, 0).cameras[CAMERAS[0]]
    for i in range(10):
        rec.add_frame({CAMERAS[0]: id_frame(1000 + i, H, W), "task": "t"})
    second = rec.save_episode().cameras[CAMERAS[0]]
    rec.finalize()

    step = first.adaptations[-1]
    expected = "libsvtav1 preset 12 -> libx264 preset veryfast crf 0"  # crf 1 - 7, floored at 0
    assert (step.effective, step.change) == ("next episode", expected)
    assert (first.encoder, second.encoder) == ("libsvtav1", "libx264")
    assert first.video_file != second.video_file and second.video_file.name == "file-001.mp4"
    with av.open(str(second.video_file)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["features"][CAMERAS[0]]["info"]["video.codec_by_file"] == {
        "chunk-000/file-000.mp4": "av1", "chunk-000/file-001.mp4": "h264"}
    _check_rows(root, 1, [0, 1000], inexact=frozenset({0}))
    assert verify(root).codes <= {"system_overloaded"}


# -- the first episode's CPU check ------------------------------------------------------------


def test_fitting_setting_takes_the_first_that_fits_else_the_fastest():
    ladder = [EncoderConfig(vcodec="libx264", preset=p) for p in ("faster", "veryfast", "superfast", "ultrafast")]
    costs = {"faster": 0.010, "veryfast": 0.006, "superfast": 0.004, "ultrafast": 0.003}
    config, took, tried = fitting_setting(ladder, lambda c: costs[c.preset], 0.007)
    assert (config.preset, took) == ("veryfast", 0.006) and len(tried) == 2
    config, took, tried = fitting_setting(ladder, lambda c: costs[c.preset], 0.001)
    assert (config.preset, took) == ("ultrafast", 0.003) and len(tried) == 4

    def fails_at_first(c):
        if c.preset == "faster":
            raise RuntimeError("cannot open")
        return costs[c.preset]

    config, _, tried = fitting_setting(ladder, fails_at_first, 0.1)
    assert config.preset == "veryfast" and tried[0] == "libx264 preset faster: failed (RuntimeError)"
    assert fitting_setting(ladder, lambda c: 1 / 0, 0.1) is None


class _Clock:
    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def process_time(self) -> float:
        return self.cpu

    def monotonic(self) -> float:
        return self.wall


def _run_check(check: CpuCheck, clock: _Clock, frames: int, cpu_per_frame: float, wall_per_frame: float,
               depth_step: int = 0) -> list[int]:
    fired, depth = [], 0
    for i in range(frames):
        clock.cpu += cpu_per_frame
        clock.wall += wall_per_frame
        depth += depth_step
        if check.over(depth):
            fired.append(i + 1)
    return fired


def test_cpu_check_fires_once_over_the_share(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr("streamrec.encode._adapt.time", clock)
    check = CpuCheck(fps=30, share=0.5, queue_size=30)  # 16.7 ms per frame
    assert _run_check(check, clock, 200, 0.010, 1 / 30) == []  # fits: measured every second, never fires
    assert not check.done and math.isclose(check.cpu_per_frame, 0.010)
    check = CpuCheck(fps=30, share=0.5, queue_size=30)
    # 20 ms of CPU per frame: over from the first second measured (frames 15..45), then never again.
    assert _run_check(check, clock, 200, 0.020, 1 / 30) == [CHECK_AFTER_SLOTS + 30]
    assert check.done and check.got is None and "its share of 0.50 CPUs" in check.describe()


def test_cpu_check_counts_what_the_encoder_got_when_its_queue_grew(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr("streamrec.encode._adapt.time", clock)
    check = CpuCheck(fps=30, share=1.0, queue_size=30)
    # 10 ms of CPU per frame fits the share (33 ms), but the process got a quarter of a CPU: 40 ms
    # per frame of wall time, and the queue grew by one frame per frame.
    assert _run_check(check, clock, 60, 0.010, 0.040, depth_step=1) == [CHECK_AFTER_SLOTS + 30]
    assert math.isclose(check.got, 0.25)
    assert math.isclose(check.budget_per_frame, GOT_MARGIN * 0.25 / 30)
    assert "the 0.25 CPUs it got while its queue grew" in check.describe()


def test_cpu_check_is_off_after_the_first_episode(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr("streamrec.encode._adapt.time", clock)
    check = CpuCheck(fps=30, share=0.5, queue_size=30)
    assert _run_check(check, clock, 20, 0.020, 1 / 30) == []  # the first episode ended early
    check.stop()
    check.restart()
    assert _run_check(check, clock, 200, 0.020, 1 / 30) == []


def test_a_camera_over_its_share_decides_once_in_its_first_episode(tmp_path, monkeypatch):
    if not compiled_in("libx264"):
        pytest.skip("this PyAV build has no libx264 (the codec adaptive overload switches to)")
    # A share no encoder fits: the check fires a second into the first episode, every candidate
    # is tried on the camera's latest frames, and the fastest is taken for the next episode.
    monkeypatch.setattr("streamrec.record._supervisor.camera_shares",
                        lambda sizes, fps: {name: 1e-4 for name in sizes})
    config = EncoderConfig(vcodec="libsvtav1", crf=_CRF)
    root = tmp_path / "ds"
    rec = DatasetRecorder.create(root, 30, _features(1), camera_encoder=config, encoder_threads=1,
                                 adapt_on_overload=True, queue_full_policy="block")
    reports, first_ids = [], [0, 1000, 2000]
    for first_id in first_ids:
        for i in range(60):  # 2 s at 30 fps, paced: the check needs frames at the recording's rate
            rec.add_frame({CAMERAS[0]: id_frame(first_id + i, H, W), "task": "t"})
            time.sleep(1 / 30)
        reports.append(rec.save_episode().cameras[CAMERAS[0]])
    rec.finalize()

    steps = reports[0].adaptations
    assert [(a.trigger, a.effective) for a in steps] == [("cpu", "next episode")], [str(a) for a in steps]
    assert steps[0].at_frame == CHECK_AFTER_SLOTS + 30
    assert steps[0].change.startswith("libsvtav1 preset 12 -> libx264 preset ")
    assert "tried libx264 preset veryfast" in steps[0].change and "ultrafast" in steps[0].change
    assert reports[1].adaptations == () and reports[2].adaptations == ()  # once, in the first episode
    assert [r.encoder for r in reports] == ["libsvtav1", "libx264", "libx264"]
    assert reports[1].video_file.name == "file-001.mp4" and reports[2].video_file == reports[1].video_file
    _check_rows(root, 1, first_ids)  # no drops (block): every row its own frame, exactly
    assert verify(root).healthy
