"""How many cameras of a given size this machine records, and with which encoder settings.

`bench()` runs the real pipeline (`DatasetRecorder` in a temporary folder, streaming, one encoder
process per camera) once per setting of a small grid: every encoder that works here (from
`probe()`), a few speed presets and `encoder_threads` values. Each trial feeds prepared frames
(the synthetic source, or footage) as fast as the encoders take them, under the `block` policy,
then saves the episode, and measures:

- the sustainable frame rate per camera: frames encoded per second of wall time, from the end of a
  short warm-up to the return of `save_episode()` (so the save's own work counts), every camera
  encoding at once;
- the CPU time of the encoder processes per frame, and of `add_frame` (the capture side's copy) per
  tick. At the rate the user asked for, the cameras need
  `fps * (cameras * encoder CPU per frame + add_frame CPU per tick)` of CPU per second; what is left
  of the machine's cores is the headroom for the control loop.

A setting keeps up ("sustainable") when its rate is at least `SUSTAIN_MARGIN` times the required
one. Among those that also leave `ENOUGH_HEADROOM` of the machine, the best stream wins: AV1 before
HEVC before H.264, then the slower preset; the rest that keep up follow by headroom, and the
unsustainable ones by rate. The top one is the recommendation, with the exact `streamrec record` flags.

Everything fits a time budget (probe and frame preparation included): the trials share it, and
settings that would not fit are dropped, least promising first, and reported as dropped.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from .._errors import ConfigError, StreamrecError
from .._platform import available_cpus
from ..encode import _codecs
from ..encode._codecs import ENCODERS
from ..encode._config import EncoderConfig
from ..encode._probe import ProbeReport, probe
from ..record._recorder import DatasetRecorder

SUSTAIN_MARGIN = 1.10
"""A setting keeps up when it encodes at least this many times the required rate per camera. The 10 %
covers what a few seconds of measurement do not show: other programs waking up, the control loop's
own bursts."""
HEADROOM_TIE = 0.05
"""Settings whose headroom is within this much of each other (5 % of the machine) count as equally
cheap: the one with the slower preset of its own encoder (better quality per byte) ranks first."""
ENOUGH_HEADROOM = 0.25
"""Headroom past which more is not worth a worse stream: ranking by CPU alone picked x264 ultrafast
here every time (92 % headroom, 1.8 times the bytes of veryfast at the same crf), over SVT-AV1
preset 12 with 64 %."""
_CODEC_QUALITY = {"av1": 0, "hevc": 1, "h264": 2}
"""Stream codecs by compression at equal quality, best first."""
WARM_UP_S = 0.5
"""Start of each trial left out of the measurement: encoder start-up, queues filling."""
MIN_TRIAL_S = 2.0
"""Shortest trial: the warm-up and 1.5 measured seconds. Below this the figures are mostly noise."""
MAX_TRIAL_S = 4.0
"""Longest trial, when the budget would allow more: longer trials mostly cost the user's time."""
TRIAL_QUEUE = 8
"""encoder_queue_maxsize during trials. Under `block` the queue's length does not change how fast
the encoders go (measured here: libsvtav1 preset 12 and x264 ultrafast, 3 cameras 640x480, queues of
4 and 30 frames, no difference beyond run-to-run noise), but every queued frame must be encoded before
a trial can end: a short queue keeps that wait short for slow settings. The queue recommended for
recording is sized for bursts instead (`recommended_queue`)."""
CONFIRM_RUNS = 2
"""Trials of the setting to be recommended, when the budget allows (see `bench`)."""
HOPELESS = 0.5
"""A trial whose rate stays under this fraction of the required one a second after its warm-up
stops feeding: it cannot keep up, and measuring longer only spends the budget."""
FRAMES_MEMORY_BYTES = 256 * 2**20
"""Prepared frames, over all cameras, are kept under this (between 8 and 60 frames per camera)."""
_OVERHEAD_GUESS_S = 1.2
"""Time of a trial beyond its feeding (encoder processes starting, the save, finalize, clean-up)
until one has been measured: 0.7-1.1 s for 3 cameras 640x480 here on a quiet moment."""
_RESERVE_S = 0.3
"""Kept at the end of the budget for ranking and cleaning up."""

# The grid. Per encoder family the presets worth comparing, fastest first: for SVT-AV1, 12 is
# streamrec's default; 10 and 8 are steps that cost clearly more CPU for better quality (8 took ~6x
# the CPU of 12 per 640x480 frame here). For x264 and x265, ultrafast is the cheapest and veryfast
# the usual real-time choice; x265 gets only ultrafast (its default preset took ~4x the CPU of
# SVT-AV1 preset 12 per frame in `streamrec probe` here). Hardware encoders run at their default
# preset: the work is on the device, the CPU cost is the colour conversion.
_PRESETS: dict[str, tuple[int | str | None, ...]] = {
    "SVT-AV1": (12, 10, 8),
    "x264": ("ultrafast", "veryfast"),
    "x265": ("ultrafast",),
}
# encoder_threads: 1 costs the least CPU per frame (no coordination between threads: best headroom
# with several cameras on few cores); null lets the codec take what it wants (most frames per second
# per camera, as many threads as cores or more); 2 is between, so it is tried only on machines with
# more than 2 cores (on 2 it is what null takes anyway).
_THREADS: tuple[int | None, ...] = (1, None, 2)


@dataclass(frozen=True, slots=True)
class Setting:
    """One point of the grid: what `streamrec record` would be given."""

    encoder: str
    preset: int | str | None
    """None: the encoder's default (hardware encoders)."""
    encoder_threads: int | None
    """None: the codec decides."""
    queue: int
    """encoder_queue_maxsize to record with (trials run with `TRIAL_QUEUE`, see there)."""

    @property
    def label(self) -> str:
        preset = "default preset" if self.preset is None else f"preset {self.preset}"
        threads = "null" if self.encoder_threads is None else str(self.encoder_threads)
        return f"{self.encoder} {preset}, encoder_threads {threads}"

    @property
    def record_flags(self) -> tuple[str, ...]:
        """The flags of `streamrec record` that select this setting."""
        flags = [f"--dataset.camera_encoder.vcodec={self.encoder}"]
        if self.preset is not None:
            flags.append(f"--dataset.camera_encoder.preset={self.preset}")
        threads = "null" if self.encoder_threads is None else str(self.encoder_threads)
        flags += [f"--dataset.encoder_threads={threads}", f"--dataset.encoder_queue_maxsize={self.queue}"]
        return tuple(flags)

    @property
    def quality_rank(self) -> int:
        """0 for the fastest preset of its encoder in the grid, 1 for the next slower one, ..."""
        presets = _presets_of(self.encoder)
        return presets.index(self.preset) if self.preset in presets else 0

    def encoder_config(self) -> EncoderConfig:
        return EncoderConfig(vcodec=self.encoder, preset=self.preset)

    def to_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder, "preset": self.preset, "encoder_threads": self.encoder_threads,
                "encoder_queue_maxsize": self.queue, "label": self.label, "record_flags": " ".join(self.record_flags)}


@dataclass(frozen=True, slots=True)
class TrialResult:
    """What one setting did on this machine."""

    setting: Setting
    frames: int
    """Frames per camera fed and encoded in the trial (0 if it failed before)."""
    measured_s: float
    """Wall time of the measurement: from the end of the warm-up to the return of save_episode()."""
    fps_per_camera: float
    """Frames each camera encoded per second, all cameras at once."""
    cpu_ms_per_frame: float | None
    """CPU time of the encoder processes per camera frame (all their threads)."""
    capture_ms_per_tick: float | None
    """CPU time of add_frame per tick (all cameras' copies onto the queues), on the caller's thread."""
    cpu_share: float | None
    """Fraction of the machine's CPU that recording at the required rate takes (encoders and add_frame)."""
    headroom: float | None
    """1 - cpu_share: what is left for the control loop and everything else."""
    sustainable: bool
    """fps_per_camera >= required fps * SUSTAIN_MARGIN."""
    bytes_per_frame: float | None
    """MP4 bytes per camera frame (the quality/size trade-off: same crf, different presets)."""
    encoder_rss_mb: float | None
    """Resident memory of the largest encoder process at the end of the trial."""
    stopped_early: bool = False
    """Feeding stopped a second after the warm-up: far below the required rate (see HOPELESS)."""
    fed_s: float = 0.0
    """Wall time spent feeding frames, warm-up included (the rest of a trial is start-up and saving)."""
    error: str | None = None
    """Why the trial gave no figures (an encoder that failed, or fell back to another one)."""
    runs: int = 1
    """Trials of this setting (the recommended one is measured again); the figures are the worst."""
    fps_runs: tuple[float, ...] = ()
    """fps_per_camera of each trial."""

    def to_dict(self) -> dict[str, Any]:
        def r(value: float | None, digits: int) -> float | None:
            return None if value is None else round(value, digits)

        return {"setting": self.setting.to_dict(), "frames": self.frames, "measured_s": r(self.measured_s, 3),
                "fps_per_camera": r(self.fps_per_camera, 2), "cpu_ms_per_frame": r(self.cpu_ms_per_frame, 3),
                "capture_ms_per_tick": r(self.capture_ms_per_tick, 3), "cpu_share": r(self.cpu_share, 4),
                "headroom": r(self.headroom, 4), "sustainable": self.sustainable,
                "bytes_per_frame": r(self.bytes_per_frame, 1), "encoder_rss_mb": r(self.encoder_rss_mb, 1),
                "stopped_early": self.stopped_early, "fed_s": r(self.fed_s, 3), "error": self.error, "runs": self.runs,
                "fps_runs": [round(f, 2) for f in self.fps_runs]}


@dataclass(frozen=True, slots=True)
class DroppedSetting:
    """A setting of the grid that was not measured, and why."""

    setting: Setting
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.setting.to_dict(), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The best setting that keeps up, and what recording with it takes."""

    trial: TrialResult
    sentence: str
    """E.g. "libsvtav1 preset 12, encoder_threads 1, queue 30: 3 x 30 fps with 45 % CPU headroom"."""
    disk_mb_per_episode: float | None
    """Per camera, for an episode of `seconds`, at the measured bytes per frame."""
    memory_mb: float | None
    """Queues' shared memory plus the encoder processes (measured RSS), for all cameras. It does not
    grow with the episode: frames are encoded as they come and packets are spooled to disk."""

    @property
    def setting(self) -> Setting:
        return self.trial.setting

    @property
    def record_flags(self) -> str:
        return " ".join(self.setting.record_flags)

    def to_dict(self) -> dict[str, Any]:
        return {"setting": self.setting.to_dict(), "sentence": self.sentence, "record_flags": self.record_flags,
                "fps_per_camera": round(self.trial.fps_per_camera, 2), "headroom": round(self.trial.headroom or 0, 4),
                "disk_mb_per_episode_per_camera": None if self.disk_mb_per_episode is None
                else round(self.disk_mb_per_episode, 1),
                "memory_mb": None if self.memory_mb is None else round(self.memory_mb, 1)}


@dataclass(frozen=True, slots=True)
class BenchProgress:
    """Passed to `bench()`'s progress callback before each step."""

    phase: str
    """"probe", "frames", "trial" or "done"."""
    trial: int
    """1-based number of the trial starting (0 before the first)."""
    total: int
    """Trials expected in all (it shrinks when settings are dropped or skipped)."""
    label: str
    elapsed_s: float
    budget_s: float


@dataclass(frozen=True, slots=True)
class BenchReport:
    """`bench()`'s answer: every trial, ranked, and the recommendation (None if nothing keeps up)."""

    cameras: int
    width: int
    height: int
    fps: int
    seconds: float
    """The episode length the user means to record (for the disk estimate)."""
    frames_source: str
    """"synthetic", or the footage folder."""
    cpus: int
    budget_s: float
    elapsed_s: float
    trial_s: float
    """Planned length of each trial (feeding time, warm-up included)."""
    trials_run: int
    """Trials run, repeats included."""
    trials: tuple[TrialResult, ...]
    """Ranked: sustainable ones by headroom, then the others by rate, then failed ones."""
    dropped: tuple[DroppedSetting, ...]
    recommendation: Recommendation | None
    not_working: Mapping[str, str] = field(default_factory=dict)
    """Encoders the probe found not working here (compiled in or not), with the reason."""
    advice: str | None = None
    """When nothing keeps up: what to change."""

    @property
    def needed_fps_per_camera(self) -> float:
        """What a setting must encode per camera to count as keeping up."""
        return self.fps * SUSTAIN_MARGIN

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": {"cameras": self.cameras, "width": self.width, "height": self.height, "fps": self.fps,
                        "seconds": self.seconds},
            "frames_source": self.frames_source, "cpus": self.cpus, "budget_s": self.budget_s,
            "elapsed_s": round(self.elapsed_s, 2), "trial_s": round(self.trial_s, 2), "trials_run": self.trials_run,
            "sustain_margin": SUSTAIN_MARGIN,
            "trials": [{"rank": i + 1, **t.to_dict()} for i, t in enumerate(self.trials)],
            "dropped": [d.to_dict() for d in self.dropped],
            "recommendation": None if self.recommendation is None else self.recommendation.to_dict(),
            "advice": self.advice,
            "not_working": dict(self.not_working),
        }


ProgressCallback = Callable[[BenchProgress], None]


# -- the grid ---------------------------------------------------------------------------------------


def _presets_of(encoder: str) -> tuple[int | str | None, ...]:
    return _PRESETS.get(ENCODERS[encoder].family.name, (None,))


def grid(encoders: Sequence[str], cpus: int, queue: int, cost: Mapping[str, float] | None = None) -> list[Setting]:
    """The settings to try, most promising first (the budget drops from the end).

    Most promising means most headroom likely: the fastest preset of every encoder before any slower
    one, one thread before the codec's choice before two, and within that the encoders the probe found
    cheapest per frame (`cost`, CPU ms per frame) first.
    """
    cost = cost or {}
    settings = []
    for name in encoders:
        if ENCODERS[name].family.hardware:
            threads: tuple[int | None, ...] = (None,)
        else:
            threads = tuple(t for t in _THREADS if t is None or t == 1 or t < cpus)
        for preset in _presets_of(name):
            for t in threads:
                settings.append(Setting(name, preset, t, queue))
    order = {name: i for i, name in enumerate(encoders)}
    return sorted(settings, key=lambda s: (s.quality_rank, _THREADS.index(s.encoder_threads),
                                           cost.get(s.encoder, math.inf), order[s.encoder]))


def recommended_queue(fps: int, cameras: int, frame_bytes: int, available_bytes: int) -> int:
    """encoder_queue_maxsize to record with: a second of frames (at least streamrec's default, 30), so
    that a stall of the encoders that long costs no frame, within a quarter of the free memory."""
    queue = max(30, fps)
    fits = available_bytes // 4 // max(1, cameras * frame_bytes) - 1
    return int(max(2, min(queue, fits)))


def rank(trials: Sequence[TrialResult]) -> list[TrialResult]:
    """Sustainable with ENOUGH_HEADROOM first, best stream first (codec, then slower preset); then
    the other sustainable ones by headroom (ties within HEADROOM_TIE: slower preset first); then the
    others by rate; then the failed ones."""
    enough = sorted((t for t in trials if t.sustainable and (t.headroom or 0.0) >= ENOUGH_HEADROOM),
                    key=lambda t: (_CODEC_QUALITY.get(ENCODERS[t.setting.encoder].stream_codec, 9),
                                   -t.setting.quality_rank, -(t.headroom or 0.0)))
    ok = sorted((t for t in trials if t.sustainable and t not in enough), key=lambda t: -(t.headroom or 0.0))
    ranked: list[TrialResult] = list(enough)
    while ok:
        top = ok[0].headroom or 0.0
        tied = [t for t in ok if (t.headroom or 0.0) >= top - HEADROOM_TIE]
        ranked += sorted(tied, key=lambda t: (-t.setting.quality_rank, -(t.headroom or 0.0)))
        ok = ok[len(tied):]
    slow = sorted((t for t in trials if not t.sustainable and t.error is None), key=lambda t: -t.fps_per_camera)
    failed = [t for t in trials if t.error is not None]
    return ranked + slow + failed


# -- frames -----------------------------------------------------------------------------------------


def _frames_per_camera(cameras: int, width: int, height: int) -> int:
    return int(max(8, min(60, FRAMES_MEMORY_BYTES // max(1, cameras * width * height * 3))))


def synthetic_frames(cameras: int, width: int, height: int) -> dict[str, list[np.ndarray]]:
    """Camera key -> frames of the synthetic source (each camera its own scene), rendered now."""
    from ..capture import SyntheticCameraConfig, SyntheticSource

    count = _frames_per_camera(cameras, width, height)
    out = {}
    for i in range(cameras):
        source = SyntheticSource(f"cam{i}", SyntheticCameraConfig(width=width, height=height))
        source.open()
        out[f"observation.images.cam{i}"] = [source.read().copy() for _ in range(count)]
        source.close()
    return out


def footage_frames(folder: Path, cameras: int, width: int, height: int) -> dict[str, list[np.ndarray]]:
    """Camera key -> decoded frames of the folder's `<camera>.mkv` clips, resized to width x height;
    cameras beyond the number of clips reuse them in turn.

    Raises:
        ConfigError: the folder has no clips.
    """
    import av

    if not folder.is_dir():
        raise ConfigError(f"footage = {str(folder)!r}: not a folder; give a folder of <camera>.mkv clips such as "
                          "../shared/footage/aloha_insertion")
    clips = sorted(folder.glob("*.mkv"))
    if not clips:
        raise ConfigError(f"footage = {str(folder)!r}: holds no <camera>.mkv clips")
    count = _frames_per_camera(cameras, width, height)
    decoded: dict[Path, list[np.ndarray]] = {}
    out = {}
    for i in range(cameras):
        clip = clips[i % len(clips)]
        if clip not in decoded:
            frames = []
            with av.open(str(clip)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # before the clock starts, but the budget counts it
                for frame in container.decode(stream):
                    if (frame.width, frame.height) != (width, height):
                        frame = frame.reformat(width=width, height=height)
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if len(frames) >= count:
                        break
            if not frames:
                raise ConfigError(f"footage = {str(folder)!r}: {clip.name} holds no frames")
            decoded[clip] = frames
        name = clip.stem if i < len(clips) else f"{clip.stem}_{i // len(clips)}"
        out[f"observation.images.{name}"] = decoded[clip]
    return out


# -- one trial --------------------------------------------------------------------------------------


def _encoder_processes(rec: DatasetRecorder) -> list[psutil.Process]:
    return [psutil.Process(pid) for pid in rec.encoder_pids.values()]


def _cpu_s(processes: Sequence[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def _encoded(rec: DatasetRecorder) -> int:
    """Frames the encoders have finished, over all cameras: a buffer is released once encoded."""
    return sum(c.frames_in - c.queue_depth for c in rec.camera_status())


def run_trial(setting: Setting, frames: Mapping[str, Sequence[np.ndarray]], fps: int, feed_s: float, root: Path,
              cpus: int) -> TrialResult:
    """Record one episode of `frames` (looped) for `feed_s` seconds as fast as the encoders take them.

    Raises:
        StreamrecError: the recorder failed (the caller reports it as the trial's error).
    """
    keys = list(frames)
    cameras = len(keys)
    length = min(len(f) for f in frames.values())
    height, width = frames[keys[0]][0].shape[:2]
    features = {key: {"dtype": "video", "shape": [height, width, 3]} for key in keys}
    # adapt_on_overload off: a trial measures one fixed setting, and being fed as fast as it goes would
    # otherwise make it step to a faster one.
    rec = DatasetRecorder.create(root, fps, features, camera_encoder=setting.encoder_config(),
                                 encoder_threads=setting.encoder_threads, encoder_queue_maxsize=TRIAL_QUEUE,
                                 queue_full_policy="block", adapt_on_overload=False)
    try:
        processes = _encoder_processes(rec)
        full = TRIAL_QUEUE + 1  # buffers per camera: the queue and the frame being encoded
        ticks = 0
        capture_s = 0.0
        mark: tuple[float, int, float, float, int] | None = None  # time, encoded, encoder CPU, capture CPU, ticks
        stopped_early = False
        start = time.perf_counter()
        while True:
            now = time.perf_counter()
            if now - start >= feed_s:
                break
            if mark is None and now - start >= WARM_UP_S:
                mark = (now, _encoded(rec), _cpu_s(processes), capture_s, ticks)
            status = rec.camera_status()
            if mark is not None and now - mark[0] >= 1.0:
                rate = (sum(c.frames_in - c.queue_depth for c in status) - mark[1]) / cameras / (now - mark[0])
                if rate < HOPELESS * fps:
                    stopped_early = True
                    break
            if any(c.queue_depth >= full for c in status):
                # Wait here rather than inside add_frame, so that its CPU time is the copy alone.
                time.sleep(0.0005)
                continue
            row: dict[str, Any] = {key: frames[key][ticks % length] for key in keys}
            row["task"] = "streamrec bench"
            c0 = time.thread_time()
            rec.add_frame(row)
            capture_s += time.thread_time() - c0
            ticks += 1
        fed_s = time.perf_counter() - start
        if mark is None:  # a trial shorter than its warm-up: measure all of it
            mark = (start, 0, 0.0, 0.0, 0)
        rss = 0.0
        for p in processes:
            with contextlib.suppress(psutil.Error):
                rss = max(rss, p.memory_info().rss / 2**20)
        report = rec.save_episode()
        end = time.perf_counter()
        cpu = _cpu_s(processes) - mark[2]
    finally:
        with contextlib.suppress(StreamrecError):
            rec.finalize()
    wrong = {name: c.encoder for name, c in report.cameras.items() if c.encoder != setting.encoder}
    if wrong:
        why = "; ".join(str(f) for c in report.cameras.values() for f in c.fallbacks)
        return _failed(setting, f"{setting.encoder} fell back to {', '.join(sorted(set(wrong.values())))}"
                                f"{': ' + why if why else ''}", ticks)
    encoded = ticks * cameras - mark[1]
    measured_s = end - mark[0]
    fps_per_camera = encoded / cameras / measured_s if measured_s > 0 else 0.0
    cpu_ms = cpu * 1e3 / encoded if encoded else None
    fed = ticks - mark[4]
    capture_ms = (capture_s - mark[3]) * 1e3 / fed if fed else None
    share = None
    if cpu_ms is not None:
        share = fps * (cameras * cpu_ms + (capture_ms or 0.0)) / 1e3 / cpus
    video_bytes = sum(p.stat().st_size for p in (root / "videos").rglob("*.mp4"))
    return TrialResult(
        setting=setting, frames=ticks, measured_s=measured_s, fps_per_camera=fps_per_camera,
        cpu_ms_per_frame=cpu_ms, capture_ms_per_tick=capture_ms, cpu_share=share,
        headroom=None if share is None else 1.0 - share,
        sustainable=fps_per_camera >= fps * SUSTAIN_MARGIN and share is not None and share < 1.0,
        bytes_per_frame=video_bytes / (ticks * cameras) if ticks else None, encoder_rss_mb=rss or None,
        stopped_early=stopped_early, fed_s=fed_s, fps_runs=(fps_per_camera,))


def _failed(setting: Setting, error: str, frames: int = 0) -> TrialResult:
    return TrialResult(setting=setting, frames=frames, measured_s=0.0, fps_per_camera=0.0, cpu_ms_per_frame=None,
                       capture_ms_per_tick=None, cpu_share=None, headroom=None, sustainable=False,
                       bytes_per_frame=None, encoder_rss_mb=None, error=error)


# -- the benchmark ----------------------------------------------------------------------------------


def check_request(cameras: int, width: int, height: int, fps: int, seconds: float, budget_s: float,
                  vcodec: str | None = None, footage: str | Path | None = None) -> None:
    """Raise ConfigError naming the first invalid argument of `bench()` (before anything is measured)."""
    def bad(name: str, value: Any, rule: str) -> ConfigError:
        return ConfigError(f"{name} = {value!r}: {rule}")

    for name, value in (("cameras", cameras), ("fps", fps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad(name, value, "must be an integer >= 1")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 16 or value % 2:
            raise bad(name, value, "must be an even integer >= 16 (the encoders need even sizes)")
    for name, value in (("seconds", seconds), ("budget_s", budget_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise bad(name, value, "must be a number of seconds > 0")
    if vcodec is not None:
        _resolve_vcodec(vcodec)
    if footage is not None:
        if not Path(footage).is_dir():
            raise ConfigError(f"footage = {str(footage)!r}: not a folder; give a folder of <camera>.mkv clips such "
                              "as ../shared/footage/aloha_insertion")
        if not any(Path(footage).glob("*.mkv")):
            raise ConfigError(f"footage = {str(footage)!r}: holds no <camera>.mkv clips")


def _resolve_vcodec(vcodec: str) -> str:
    name = _codecs.encoder_name(vcodec)
    if name != _codecs.AUTO and name not in ENCODERS:
        raise ConfigError(f"vcodec = {vcodec!r}: unknown encoder; one of {list(_codecs.VCODEC_CHOICES)}")
    return name


def bench(cameras: int = 3, width: int = 640, height: int = 480, fps: int = 30, *, seconds: float = 20.0,
          footage: str | Path | None = None, vcodec: str | None = None, budget_s: float = 60.0,
          budget_started: float | None = None, keep_s: float = 0.0, work_dir: str | Path | None = None,
          refresh_probe: bool = False, progress: ProgressCallback | None = None) -> BenchReport:
    """Measure which encoder settings record `cameras` cameras of width x height at `fps` here.

    Args:
        cameras, width, height, fps: The camera layout to record.
        seconds: Length of the episodes to record; used for the disk estimate per episode only
            (streaming keeps memory flat however long the episode, and a trial of a few seconds
            measures the rate an episode of any length keeps).
        footage: A folder of `<camera>.mkv` clips to feed (resized to width x height if needed);
            default: the synthetic source.
        vcodec: Measure only this encoder (`auto`: the one `vcodec=auto` picks here); default: every
            encoder that works here.
        budget_s: Time for the whole call, probe included; trials are planned and dropped to fit.
        budget_started: `time.perf_counter()` when the budget started (a command's start); default: now.
        keep_s: Of the budget, time the caller needs after this returns (printing, a plot).
        work_dir: Where the trial datasets are written (default: the system's temporary folder). Point
            it at the disk you will record to: the pipeline writes and syncs there.
        refresh_probe: Probe the encoders again instead of reading the probe's cache.
        progress: Called before each step (see BenchProgress).

    Returns:
        A BenchReport, trials ranked, with the recommendation (None when nothing keeps up).

    Raises:
        ConfigError: an argument is invalid, or the budget does not leave time for one trial.
    """
    started = time.perf_counter() if budget_started is None else budget_started
    deadline = started + budget_s - keep_s
    check_request(cameras, width, height, fps, seconds, budget_s, vcodec, footage)
    wanted = None if vcodec is None else _resolve_vcodec(vcodec)
    cpus = available_cpus()

    def tell(phase: str, trial: int = 0, total: int = 0, label: str = "") -> None:
        if progress is not None:
            progress(BenchProgress(phase, trial, total, label, time.perf_counter() - started, budget_s))

    tell("probe", label="which encoders work here")
    report: ProbeReport = probe(None if wanted in (None, _codecs.AUTO) else [wanted], width=width, height=height,
                                fps=fps, refresh=refresh_probe)
    working = [r.encoder for r in report.results if r.works]
    if wanted == _codecs.AUTO:
        working = [report.auto] if report.auto in working else []
    not_working = {r.encoder: r.error or "does not work" for r in report.results if not r.works}
    cost = {r.encoder: r.cpu_ms_per_frame for r in report.results if r.works and r.cpu_ms_per_frame}

    tell("frames", label="preparing frames")
    frames = (footage_frames(Path(footage), cameras, width, height) if footage is not None
              else synthetic_frames(cameras, width, height))
    queue = recommended_queue(fps, cameras, width * height * 3, psutil.virtual_memory().available)
    settings = grid(working, cpus, queue, cost)

    left = deadline - time.perf_counter() - _RESERVE_S
    n = max(1, len(settings) + CONFIRM_RUNS - 1)
    trial_s = min(MAX_TRIAL_S, left / n - _OVERHEAD_GUESS_S)
    trial_s = max(MIN_TRIAL_S, trial_s)
    if settings and left < MIN_TRIAL_S + _OVERHEAD_GUESS_S:
        spent = time.perf_counter() - started
        raise ConfigError(f"budget_s = {budget_s:g}: the probe and preparing frames took {spent:.1f} s, leaving "
                          f"{max(left, 0):.1f} s; one trial needs ~{MIN_TRIAL_S + _OVERHEAD_GUESS_S:.1f} s. Give at "
                          f"least {math.ceil(spent + MIN_TRIAL_S + _OVERHEAD_GUESS_S + _RESERVE_S + keep_s + 1)} s")

    results: dict[Setting, TrialResult] = {}
    dropped: list[DroppedSetting] = []
    overhead = _OVERHEAD_GUESS_S
    measured_overhead = False
    trials_run = 0
    base = Path(tempfile.mkdtemp(prefix="streamrec-bench-", dir=work_dir))

    def fits() -> bool:
        return time.perf_counter() + trial_s + overhead <= deadline - _RESERVE_S

    def measure(setting: Setting, total: int, label: str) -> None:
        nonlocal overhead, measured_overhead, trials_run
        trials_run += 1
        tell("trial", trials_run, total, label)
        t0 = time.perf_counter()
        root = base / f"trial-{trials_run:02d}"
        try:
            result = run_trial(setting, frames, fps, trial_s, root, cpus)
        except StreamrecError as e:
            result = _failed(setting, str(e))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        results[setting] = merge(results[setting], result) if setting in results else result
        if result.error is None:
            # What a trial costs beyond its feeding: the first measurement replaces the guess, then
            # the slowest so far counts, so that a trial that overran is not planned again.
            spent = time.perf_counter() - t0 - result.fed_s
            overhead = spent if not measured_overhead else max(overhead, spent)
            measured_overhead = True

    try:
        for i, setting in enumerate(settings):
            slower_than = _pruned_by(setting, results.values())
            if slower_than is not None:
                dropped.append(DroppedSetting(setting, f"skipped: {slower_than.setting.label} was far from keeping "
                                                       "up, and a slower preset with the same threads costs more"))
                continue
            if not fits():
                for rest in settings[i:]:
                    if _pruned_by(rest, results.values()) is None:
                        dropped.append(DroppedSetting(rest, f"not measured: the budget ({budget_s:g} s) ran out; "
                                                            "raise --budget-s or restrict --vcodec"))
                break
            todo = sum(_pruned_by(s, results.values()) is None for s in settings[i + 1:])
            measure(setting, trials_run + 1 + todo + CONFIRM_RUNS - 1, setting.label)
        # A few seconds on a busy machine can flatter a setting: the one that would be recommended
        # is measured again, and keeps the worse figures of its trials. If it no longer ranks first,
        # the new first is measured again, as long as the budget lasts.
        while True:
            ranked = rank(list(results.values()))
            top = ranked[0] if ranked and ranked[0].sustainable else None
            if top is None or top.runs >= CONFIRM_RUNS or not fits():
                break
            measure(top.setting, trials_run + CONFIRM_RUNS - top.runs, f"again: {top.setting.label}")
    finally:
        shutil.rmtree(base, ignore_errors=True)

    ranked = rank(list(results.values()))
    best = ranked[0] if ranked and ranked[0].sustainable else None
    recommendation = None if best is None else _recommend(best, cameras, width, height, fps, seconds)
    tell("done", trials_run, trials_run, "")
    return BenchReport(
        cameras=cameras, width=width, height=height, fps=fps, seconds=seconds,
        frames_source="synthetic" if footage is None else str(footage), cpus=cpus, budget_s=budget_s,
        elapsed_s=time.perf_counter() - started, trial_s=trial_s, trials_run=trials_run, trials=tuple(ranked),
        dropped=tuple(dropped), recommendation=recommendation, not_working=not_working,
        advice=None if best is not None else _advice(ranked, cameras, fps, working, not_working))


def merge(a: TrialResult, b: TrialResult) -> TrialResult:
    """Two trials of one setting as one: the worse rate and CPU of the two (a recommendation should
    hold on the worse run), sizes averaged."""
    def worst(x: float | None, y: float | None) -> float | None:
        return x if y is None else y if x is None else max(x, y)

    share = worst(a.cpu_share, b.cpu_share)
    sizes = [v for v in (a.bytes_per_frame, b.bytes_per_frame) if v is not None]
    return TrialResult(
        setting=a.setting, frames=a.frames + b.frames, measured_s=a.measured_s + b.measured_s,
        fps_per_camera=min(a.fps_per_camera, b.fps_per_camera),
        cpu_ms_per_frame=worst(a.cpu_ms_per_frame, b.cpu_ms_per_frame),
        capture_ms_per_tick=worst(a.capture_ms_per_tick, b.capture_ms_per_tick), cpu_share=share,
        headroom=None if share is None else 1.0 - share, sustainable=a.sustainable and b.sustainable,
        bytes_per_frame=sum(sizes) / len(sizes) if sizes else None,
        encoder_rss_mb=worst(a.encoder_rss_mb, b.encoder_rss_mb), stopped_early=a.stopped_early or b.stopped_early,
        error=a.error or b.error, fed_s=a.fed_s + b.fed_s, runs=a.runs + b.runs, fps_runs=a.fps_runs + b.fps_runs)


def _pruned_by(setting: Setting, results: Iterable[TrialResult]) -> TrialResult | None:
    """A measured faster preset of the same encoder, with the same threads, that was far from keeping
    up: it stopped early, or its CPU alone at the required rate is more than the machine has. Only
    those: a faster preset that just missed may have met a busy moment, so the slower one is tried."""
    for r in results:
        s = r.setting
        if (s.encoder == setting.encoder and s.encoder_threads == setting.encoder_threads
                and s.quality_rank < setting.quality_rank and r.error is None
                and (r.stopped_early or (r.cpu_share is not None and r.cpu_share >= 1.0))):
            return r
    return None


def _recommend(best: TrialResult, cameras: int, width: int, height: int, fps: int, seconds: float) -> Recommendation:
    s = best.setting
    sentence = (f"{s.label}, queue {s.queue}: {cameras} \u00d7 {fps} fps with {100 * (best.headroom or 0):.0f} % "
                "CPU headroom")
    disk = None if best.bytes_per_frame is None else best.bytes_per_frame * fps * seconds / 1e6
    queues = cameras * (s.queue + 1) * width * height * 3 / 2**20
    memory = queues + cameras * (best.encoder_rss_mb or 0.0)
    return Recommendation(trial=best, sentence=sentence, disk_mb_per_episode=disk, memory_mb=memory)


def _advice(ranked: Sequence[TrialResult], cameras: int, fps: int, working: Sequence[str],
            not_working: Mapping[str, str]) -> str:
    if not working:
        reasons = "; ".join(f"{name}: {why}" for name, why in not_working.items())
        return f"no encoder to measure works here ({reasons})"
    measured = [t for t in ranked if t.error is None and t.fps_per_camera > 0]
    if not measured:
        return "no trial could measure anything (every one failed: see the errors); check the encoders with " \
               "`streamrec probe --refresh`"
    best = max(measured, key=lambda t: t.fps_per_camera)
    fit = int(cameras * best.fps_per_camera / (fps * SUSTAIN_MARGIN))
    where = (f"about {fit} camera(s) of this size" if fit >= 1
             else "not even one camera of this size")
    return (f"no setting keeps up with {cameras} \u00d7 {fps} fps here: the best, {best.setting.label}, encoded "
            f"{best.fps_per_camera:.1f} fps per camera, which is {where} at {fps} fps. Record fewer cameras, "
            "smaller frames or a lower fps, or use --dataset.streaming_encoding=false (PNGs while recording, "
            "encoded at save)")
