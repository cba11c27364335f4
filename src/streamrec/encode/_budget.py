"""How much of the machine the cameras' encoders may use, and how much they will need.

The encoders run beside the capture loop on the same CPUs. Each camera gets a share of
ENCODE_SHARE of the machine, in proportion to its pixels per second. Two things use it:

- `estimate_need`, before recording: the encoder's CPU per frame from `probe` (cached per
  machine), scaled to each camera, against the machine. `streamrec record` says at the start when
  the cameras need more than the encoders' share, and what will happen.
- the encoder process, in the first episode (`_adapt.CpuCheck`): its own measured CPU per frame
  against its share. Over it, the camera moves at once to a setting that fits (`_adapt`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .._platform import available_cpus
from ._codecs import ENCODERS
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
class CameraNeed:
    camera: str
    width: int
    height: int
    cpu_ms_per_frame: float
    """The probe's figure for the encoder at this size."""


@dataclass(frozen=True, slots=True)
class EncodingNeed:
    """The cameras' encoding CPU at `fps` against the machine, from `probe`'s per-frame cost."""

    encoder: str
    preset: str
    fps: int
    cpus: int
    cameras: tuple[CameraNeed, ...]

    @property
    def cpus_needed(self) -> float:
        return sum(c.cpu_ms_per_frame for c in self.cameras) * self.fps / 1000

    @property
    def over(self) -> bool:
        """More than the encoders' share of the machine."""
        return self.cpus_needed > self.cpus * ENCODE_SHARE

    def describe(self, adapt: bool, policy: str) -> str:
        sizes = sorted({(c.width, c.height) for c in self.cameras})
        size = ", ".join(f"{w}x{h}" for w, h in sizes)
        per_frame = "/".join(f"{c:.1f}" for c in sorted({round(c.cpu_ms_per_frame, 1) for c in self.cameras}))
        text = (f"{len(self.cameras)} camera(s) at {size}, {self.fps} fps need about {self.cpus_needed:.1f} CPUs "
                f"to encode with {self.encoder} preset {self.preset} ({per_frame} ms of CPU per frame, measured "
                f"by streamrec probe); this machine has {self.cpus}, of which about "
                f"{self.cpus * ENCODE_SHARE:.1f} are left for encoding beside the capture loop. ")
        if adapt:
            text += ("Adaptive overload will move each camera to a setting that fits, measured in the first "
                     "second of the first episode; that episode may drop frames, the next ones start in new "
                     "files. ")
        elif policy == "block":
            text += "With queue_full_policy=block, capture will wait for the encoders and fall behind. "
        else:
            text += "Frames will be dropped (adapt_on_overload is off). "
        return text + "To avoid it: a faster vcodec (h264), fewer cameras, or a lower fps."


def estimate_need(sizes: Mapping[str, tuple[int, int]], fps: int, encoders: Mapping[str, EncoderConfig],
                  encoder_threads: int | None) -> EncodingNeed | None:
    """The encoding CPU the cameras need, from `probe` (measured once per machine and size, then cached).

    `sizes`: camera -> (height, width); `encoders`: camera -> the encoder it starts with. None when
    the cameras do not share one encoder, or the probe did not get a figure (a hardware encoder
    is held to its device, not the CPUs).
    """
    from ._probe import probe

    configs = list(encoders.values())
    if not configs or any(c != configs[0] for c in configs):
        return None
    config = configs[0]
    if ENCODERS[config.encoder].family.hardware:
        return None
    by_size: dict[tuple[int, int], float | None] = {}
    cameras = []
    for camera, (h, w) in sizes.items():
        if (h, w) not in by_size:
            result = probe([config.encoder], width=w, height=h, fps=fps, encoder=config,
                           encoder_threads=encoder_threads).results[0]
            by_size[(h, w)] = result.cpu_ms_per_frame if result.works else None
        cost = by_size[(h, w)]
        if cost is None:
            return None
        cameras.append(CameraNeed(camera, w, h, cost))
    preset = config.effective_preset
    return EncodingNeed(config.encoder, "default" if preset is None else str(preset), fps, available_cpus(),
                        tuple(cameras))



def encoding_notice(sizes: Mapping[str, tuple[int, int]], fps: int, encoders: Mapping[str, EncoderConfig],
                    encoder_threads: int | None, adapt: bool, policy: str) -> str | None:
    """What a recording command says at the start when the cameras need more encoding CPU than the
    encoders' share of the machine (None when they fit, or there is no figure to tell)."""
    need = estimate_need(sizes, fps, encoders, encoder_threads)
    if need is None or not need.over:
        return None
    return need.describe(adapt, policy)
