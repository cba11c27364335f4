"""`bench()`'s parts that decide without measuring: the grid, the flags, ranking, merging, skipping,
the queue, the frames; and its argument checks."""

from __future__ import annotations

import dataclasses
import shlex

import pytest

from helpers.frames import FOOTAGE
from streamrec import ConfigError, bench
from streamrec.bench._bench import (
    ENOUGH_HEADROOM,
    HEADROOM_TIE,
    Setting,
    TrialResult,
    _pruned_by,
    footage_frames,
    grid,
    merge,
    rank,
    recommended_queue,
    synthetic_frames,
)
from streamrec.cli import _flags
from streamrec.cli._record import RecordConfig


def trial(encoder: str = "libsvtav1", preset: int | str | None = 12, threads: int | None = 1, *, fps: float = 40.0,
          headroom: float | None = 0.5, sustainable: bool = True, error: str | None = None,
          stopped_early: bool = False) -> TrialResult:
    share = None if headroom is None else 1 - headroom
    return TrialResult(setting=Setting(encoder, preset, threads, 30), frames=100, measured_s=2.0, fps_per_camera=fps,
                       cpu_ms_per_frame=10.0, capture_ms_per_tick=0.5, cpu_share=share, headroom=headroom,
                       sustainable=sustainable, bytes_per_frame=5000.0, encoder_rss_mb=100.0,
                       stopped_early=stopped_early, error=error, fps_runs=(fps,))


def test_grid_most_promising_first() -> None:
    settings = grid(["libsvtav1", "libx264"], cpus=2, queue=30, cost={"libsvtav1": 12.0, "libx264": 4.0})
    labels = [s.label for s in settings]
    # The fastest presets first, one thread before the codec's choice, the cheaper encoder first;
    # on 2 cores `encoder_threads 2` is what null takes anyway, so it is not tried.
    assert labels[:4] == ["libx264 preset ultrafast, encoder_threads 1", "libsvtav1 preset 12, encoder_threads 1",
                          "libx264 preset ultrafast, encoder_threads null", "libsvtav1 preset 12, encoder_threads null"]
    assert labels[-2:] == ["libsvtav1 preset 8, encoder_threads 1", "libsvtav1 preset 8, encoder_threads null"]
    assert len(settings) == (3 + 2) * 2 and all(s.queue == 30 for s in settings)
    assert {s.encoder_threads for s in grid(["libx264"], cpus=8, queue=30)} == {1, 2, None}
    assert grid(["h264_nvenc"], cpus=8, queue=30) == [Setting("h264_nvenc", None, None, 30)]


def test_record_flags_are_what_record_parses() -> None:
    required = ["--dataset.root=x", "--dataset.single_task=t", "--cameras={top: {type: synthetic}}"]
    for setting in (Setting("libsvtav1", 12, 1, 30), Setting("libx264", "veryfast", None, 45),
                    Setting("h264_nvenc", None, None, 30)):
        flags = " ".join(setting.record_flags)
        config = _flags.parse(RecordConfig, [*shlex.split(flags), *required])
        ds = config.dataset
        assert (ds.camera_encoder.vcodec, ds.camera_encoder.preset, ds.encoder_threads, ds.encoder_queue_maxsize) \
            == (setting.encoder, setting.preset, setting.encoder_threads, setting.queue)
    assert Setting("libsvtav1", 12, 1, 30).record_flags == (
        "--dataset.camera_encoder.vcodec=libsvtav1", "--dataset.camera_encoder.preset=12",
        "--dataset.encoder_threads=1", "--dataset.encoder_queue_maxsize=30")


def test_rank() -> None:
    cheap = trial("libx264", "ultrafast", headroom=0.80)
    near = trial("libx264", "veryfast", headroom=0.80 - HEADROOM_TIE / 2)
    svt = trial("libsvtav1", 12, headroom=0.40)
    svt_slower = trial("libsvtav1", 10, headroom=ENOUGH_HEADROOM)  # enough headroom: the better stream first
    tight = trial("libsvtav1", 8, headroom=0.15)
    tight_x264 = trial("libx264", "veryfast", 2, headroom=0.15 + HEADROOM_TIE / 2)  # tied: slower preset first
    slow_fast = trial("libsvtav1", 10, 2, fps=25.0, headroom=0.1, sustainable=False)
    slow = trial("libsvtav1", 8, 2, fps=9.0, headroom=-0.5, sustainable=False)
    failed = trial("h264_nvenc", None, None, fps=0.0, headroom=None, sustainable=False, error="no device")
    assert rank([failed, slow, svt, cheap, tight_x264, slow_fast, near, tight, svt_slower]) == [
        svt_slower, svt, near, cheap, tight, tight_x264, slow_fast, slow, failed]


def test_merge_keeps_the_worse_run() -> None:
    a = trial(fps=50.0, headroom=0.5)
    b = dataclasses.replace(trial(fps=34.0, headroom=0.4), cpu_ms_per_frame=12.0, bytes_per_frame=6000.0)
    m = merge(a, b)
    assert (m.fps_per_camera, m.headroom, m.cpu_ms_per_frame, m.runs, m.fps_runs) == (34.0, pytest.approx(0.4), 12.0,
                                                                                       2, (50.0, 34.0))
    assert m.bytes_per_frame == 5500.0 and m.frames == 200 and m.sustainable
    assert not merge(a, trial(fps=20.0, sustainable=False)).sustainable


def test_slower_presets_skipped_only_after_a_hopeless_one() -> None:
    nine = Setting("libsvtav1", 10, 1, 30)
    just_missed = trial("libsvtav1", 12, 1, fps=31.0, headroom=0.2, sustainable=False)
    assert _pruned_by(nine, [just_missed]) is None  # a busy moment: measure the slower preset anyway
    hopeless = trial("libsvtav1", 12, 1, fps=9.0, headroom=0.4, sustainable=False, stopped_early=True)
    assert _pruned_by(nine, [hopeless]) is hopeless
    assert _pruned_by(Setting("libsvtav1", 10, None, 30), [hopeless]) is None  # other threads: measured
    too_costly = trial("libsvtav1", 12, 1, fps=31.0, headroom=-0.2, sustainable=False)
    assert _pruned_by(nine, [too_costly]) is too_costly


def test_recommended_queue() -> None:
    frame = 640 * 480 * 3
    assert recommended_queue(30, 3, frame, 8 * 2**30) == 30
    assert recommended_queue(15, 3, frame, 8 * 2**30) == 30  # never below streamrec's default
    assert recommended_queue(60, 3, frame, 8 * 2**30) == 60  # a second of frames
    assert recommended_queue(60, 3, frame, 100 * 2**20) == 8  # a quarter of 100 MB: 9 buffers of 3 cameras


def test_frames() -> None:
    frames = synthetic_frames(2, 64, 48)
    assert list(frames) == ["observation.images.cam0", "observation.images.cam1"]
    assert all(f.shape == (48, 64, 3) for clip in frames.values() for f in clip)
    assert not (frames["observation.images.cam0"][0] == frames["observation.images.cam1"][0]).all()


@pytest.mark.skipif(not FOOTAGE.is_dir(), reason=f"footage not found at {FOOTAGE}")
def test_footage_frames_resized_and_reused() -> None:
    clips = sorted(p.stem for p in FOOTAGE.glob("*.mkv"))
    frames = footage_frames(FOOTAGE, len(clips) + 1, 160, 120)
    assert list(frames) == [f"observation.images.{c}" for c in clips] + [f"observation.images.{clips[0]}_1"]
    assert all(f.shape == (120, 160, 3) for clip in frames.values() for f in clip)


@pytest.mark.parametrize("kwargs,message", [
    ({"cameras": 0}, "cameras = 0: must be an integer >= 1"),
    ({"width": 100, "height": 75}, "height = 75: must be an even integer >= 16"),
    ({"fps": 2.5}, "fps = 2.5: must be an integer >= 1"),
    ({"budget_s": -1}, "budget_s = -1: must be a number of seconds > 0"),
    ({"vcodec": "mpeg2"}, "vcodec = 'mpeg2': unknown encoder"),
    ({"footage": "/no/such/folder"}, "footage = '/no/such/folder': not a folder"),
])
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        bench(**kwargs)
