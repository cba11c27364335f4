"""How much of the machine the cameras' encoders may use, and how much they need.

The encoders run beside the capture loop on the same CPUs. Each camera gets a share of
ENCODE_SHARE of the machine, in proportion to its pixels per second. Two checks use it, both
part of adaptive overload:

- `plan_start`, when the recorder starts: the cameras' encoder's CPU per frame from `probe`
  (camera-like test frames, in a child process; measured once per machine, encoder and camera
  size, then cached). Past the encoders' share, the recorder says so. Past the whole machine, no
  episode could be recorded whole with these settings, and the first one would end with seconds
  of backlog to encode: the cameras start on the first faster setting that fits by the same
  measure instead.
- `_adapt.CpuCheck`, in each encoder process during the first episode: its own CPU per frame on
  the real frames against its share; over it, the camera moves at once to a setting that fits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .._platform import available_cpus
from ._adapt import describe_setting
from ._codecs import ENCODERS, faster_encoders
from ._config import EncoderConfig

ENCODE_SHARE = 0.8
"""Of the machine's CPUs, the part the encoders may use together. The rest is for the capture
loop (the sources' reads, add_frame, the table rows) and the system: measured here, three cameras'
add_frame and copies took 1.2-1.4 ms of CPU per tick (benchmarks/cpu_per_frame.py), a camera
driver or a simulation more."""


def camera_shares(sizes: Mapping[str, tuple[int, int]], fps: int, cpus: int | None = None) -> dict[str, float]:
    """CPUs each camera's encoder may use: ENCODE_SHARE of `cpus`, split by pixels (`sizes`: height, width)."""
    cpus = available_cpus() if cpus is None else cpus
    pixels = {name: h * w for name, (h, w) in sizes.items()}
    total = sum(pixels.values()) or 1
    return {name: cpus * ENCODE_SHARE * p / total for name, p in pixels.items()}


@dataclass(frozen=True, slots=True)
class EncodingNeed:
    """What the cameras need to encode at `fps` with `encoder`, by `probe`'s figures."""

    encoder: EncoderConfig
    fps: int
    cpus: int
    ms_per_frame: Mapping[tuple[int, int], float]
    """CPU milliseconds per frame, per camera size (height, width)."""
    cameras: Mapping[tuple[int, int], int]
    """Cameras of each size."""

    @property
    def cpus_needed(self) -> float:
        return sum(self.ms_per_frame[size] * n for size, n in self.cameras.items()) * self.fps / 1000

    @property
    def over_share(self) -> bool:
        return self.cpus_needed > self.cpus * ENCODE_SHARE

    @property
    def over_machine(self) -> bool:
        return self.cpus_needed > self.cpus

    def describe(self) -> str:
        sizes = ", ".join(f"{n} x {w}x{h}" for (h, w), n in self.cameras.items())
        cost = "/".join(f"{ms:.1f}" for ms in self.ms_per_frame.values())
        return (f"cameras {sizes} at {self.fps} fps need about {self.cpus_needed:.1f} CPUs to encode with "
                f"{describe_setting(self.encoder)} ({cost} ms of CPU per frame, streamrec probe's figure)")


def measure_need(sizes: Mapping[str, tuple[int, int]], fps: int, encoder: EncoderConfig,
                 encoder_threads: int | None, refresh: bool = False) -> EncodingNeed | None:
    """`encoder`'s CPU per frame from `probe`, once per camera size (`sizes`: camera -> (height,
    width)); None when it does not work here. The probe encodes camera-like test frames in a child
    process, so that the figure is that encoder's CPU alone, and caches it per machine (`refresh`:
    measure again)."""
    from ._probe import probe

    cameras: dict[tuple[int, int], int] = {}
    for size in sizes.values():
        cameras[size] = cameras.get(size, 0) + 1
    ms = {}
    for h, w in cameras:
        result = probe([encoder.encoder], width=w, height=h, fps=fps, encoder=encoder,
                       encoder_threads=encoder_threads, refresh=refresh).results[0]
        if not result.works or not result.cpu_ms_per_frame:
            return None
        ms[(h, w)] = result.cpu_ms_per_frame
    return EncodingNeed(encoder, fps, available_cpus(), ms, cameras)


@dataclass(frozen=True, slots=True)
class StartPlan:
    need: EncodingNeed
    """The cameras' own settings."""
    start: EncodingNeed | None = None
    """The faster setting they start on instead, when `need` is more than the whole machine."""

    def message(self, adapt: bool, policy: str) -> str | None:
        """What the recorder says at start; None when the settings fit the encoders' share."""
        need = self.need
        if not need.over_share:
            return None
        text = f"{need.describe()}; this machine has {need.cpus}"
        if self.start is not None:
            fits = "fits" if not self.start.over_share else "still does not fit; the fastest there is"
            return (f"{text}, so no episode could keep every frame. Starting with "
                    f"{describe_setting(self.start.encoder)} instead: about {self.start.cpus_needed:.1f} CPUs by "
                    f"the same measure ({fits}). adapt_on_overload=False keeps your settings; a faster vcodec, "
                    "fewer cameras or a lower fps avoid the change.")
        text += f", about {need.cpus * ENCODE_SHARE:.1f} of them for encoding beside the capture loop. "
        if adapt:
            return text + ("Each camera measures its own cost in the first seconds of the first episode and, if "
                           "it does not keep up, moves to a faster setting from the next episode (that episode "
                           "may drop frames).")
        if policy == "block":
            return text + "With queue_full_policy=block, capture will wait for the encoders and fall behind."
        return text + "Frames may be dropped (adapt_on_overload is off)."


def plan_start(sizes: Mapping[str, tuple[int, int]], fps: int, encoder: EncoderConfig,
               encoder_threads: int | None, adapt: bool) -> StartPlan | None:
    """The cameras' need with `encoder`, and with `adapt`, the setting to start on when it is more
    than the machine. None for a hardware encoder (its limit is its device, not the CPUs)."""
    if not sizes or ENCODERS[encoder.encoder].family.hardware:
        return None
    need = measure_need(sizes, fps, encoder, encoder_threads)
    if need is None:
        return None
    if adapt and need.over_machine:
        # A cached figure may come from a busy moment (seen: 73 instead of 60 ms per 1080p frame, CPU
        # time); changing the codec is decided on a measurement taken now.
        need = measure_need(sizes, fps, encoder, encoder_threads, refresh=True) or need
    if not adapt or not need.over_machine:
        return StartPlan(need)
    start = None
    for candidate in faster_encoders(encoder):  # slowest first: the first that fits is the best
        measured = measure_need(sizes, fps, candidate, encoder_threads)
        if measured is not None:  # else it does not work here: not a candidate
            start = measured
            if not start.over_share:
                break
    return StartPlan(need, start)
