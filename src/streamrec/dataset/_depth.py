"""Depth features in the dataset: their `info` block in info.json, and their statistics.

A depth feature is declared as LeRobot declares one, `{"dtype": "video", "shape": [H, W, 1], "info":
{"is_depth_map": true}}`. In info.json its `info` block says how it is stored (`depth_feature_info`):

- the 12-bit mode carries LeRobot 0.6.1's keys, values and order (its writer puts `is_depth_map` and
  `depth_unit` first, then what it probes from the stream, then every encoder field as `video.<field>`), and the
  quantizer's parameters, which LeRobot's loader dequantizes with;
- the exact mode has the same stream keys (`video.codec` ffv1, `video.pix_fmt` gray16le), no quantizer keys,
  and `depth_quantized: false`. `is_depth_map` stays true, so LeRobot 0.6.1 refuses the feature (its depth
  config does not accept the codec) instead of reading millimetres as codes.

A reader tells the two apart by `depth_quantized` (absent, as in every LeRobot-written block, means quantized)
and `video.codec`; `depth_config_from_info` turns a block back into its `DepthEncoderConfig` (resume, repair,
verify).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .._errors import ConfigError
from ._stats import QUANTILES, Stats

if TYPE_CHECKING:
    from ..encode._depth import DepthEncoderConfig

DEPTH_UNIT = "mm"
EXACT_MARKER = "depth_quantized"
"""Key streamrec adds to an exact-mode feature's info (value false); LeRobot writes no such key."""


def is_depth_info(info: Any) -> bool:
    """Whether a feature's `info` block marks a depth map (LeRobot's key, or its legacy `video.` spelling)."""
    return isinstance(info, Mapping) and bool(info.get("is_depth_map") or info.get("video.is_depth_map"))


def depth_feature_info(config: DepthEncoderConfig, *, height: int, width: int, fps: int) -> dict[str, Any]:
    """The `info` block of a depth video feature (see the module docstring). `depth_unit` is "mm" because
    metres are converted before quantizing."""
    info: dict[str, Any] = {
        "is_depth_map": True,
        "depth_unit": DEPTH_UNIT,
        "video.height": height,
        "video.width": width,
        "video.codec": config.stream_codec,
        "video.pix_fmt": config.effective_pix_fmt,
        "video.fps": fps,
        "video.channels": 1,
        "has_audio": False,
        "video.g": config.g,
        "video.crf": config.effective_crf,
        "video.preset": config.effective_preset,
        "video.fast_decode": config.fast_decode,
        "video.video_backend": "pyav",
        "video.extra_options": config.options,
    }
    q = config.quantizer
    if q is not None:
        info.update(q.to_info())
    else:
        info[EXACT_MARKER] = False
    return info


def depth_config_from_info(info: Mapping[str, Any]) -> DepthEncoderConfig:
    """The DepthEncoderConfig a depth feature's info block was written with.

    A block without `depth_quantized: false` is quantized, as every LeRobot-written one is; its missing
    quantizer keys take LeRobot's defaults, as LeRobot's loader does.

    Raises:
        ConfigError: the block names a codec or values streamrec does not write.
    """
    from ..encode._depth import EXACT_CODEC, QUANTIZED_CODEC, DepthEncoderConfig

    vcodec = info.get("video.codec", QUANTIZED_CODEC)
    exact = info.get(EXACT_MARKER) is False
    if exact != (vcodec == EXACT_CODEC):
        raise ConfigError(f"depth info: video.codec = {vcodec!r} with {EXACT_MARKER} = {info.get(EXACT_MARKER)!r}; "
                          f"the exact mode is {EXACT_CODEC!r} with {EXACT_MARKER} = false, the 12-bit mode "
                          f"{QUANTIZED_CODEC!r} without it")
    kwargs: dict[str, Any] = {"vcodec": vcodec, "pix_fmt": info.get("video.pix_fmt")}
    for name in ("g", "crf", "preset", "fast_decode", "extra_options"):
        if info.get(f"video.{name}") is not None:
            kwargs[name] = info[f"video.{name}"]
    if not exact:
        for name in ("depth_min", "depth_max", "shift", "use_log"):
            kwargs[name] = info.get(f"video.{name}")
    if kwargs.get("extra_options") == {}:
        kwargs["extra_options"] = None  # LeRobot merges disagreeing sources into {}: the mode's default then
    return DepthEncoderConfig(**kwargs)


class DepthStatsSampler:
    """Statistics of a depth camera's millimetres over a subsample of one episode's frames.

    Runs in the encoder process, never on the capture thread. Like LeRobot's depth stats they are in the
    stored unit (mm, not scaled to [0, 1]), of shape (1, 1, 1), and count every pixel, "no reading" (0)
    included. A 65536-bin histogram of 1 pixel in 16 of every `frame_stride`-th frame gives exact min, max
    and quantiles of those pixels.
    """

    PIXEL_STEP = 4

    def __init__(self, frame_stride: int) -> None:
        self.frame_stride = max(1, frame_stride)
        self._hist = np.zeros(65536, np.int64)
        self._frames = 0

    def maybe_add(self, slot: int, frame: np.ndarray) -> None:
        if slot % self.frame_stride and self._frames:  # the first frame always counts: stats need one
            return
        px = frame[:: self.PIXEL_STEP, :: self.PIXEL_STEP].reshape(-1)
        self._hist += np.bincount(px, minlength=65536)
        self._frames += 1

    def stats(self) -> Stats:
        if self._frames == 0:
            raise ValueError("no frame was sampled")
        values = np.arange(65536, dtype=np.float64)
        total = self._hist.sum()
        mean = float((self._hist * values).sum() / total)
        var = float((self._hist * values**2).sum() / total - mean**2)
        seen = np.flatnonzero(self._hist)
        cdf = np.cumsum(self._hist) / total
        out = {"min": values[seen[0]], "max": values[seen[-1]], "mean": mean, "std": np.sqrt(max(var, 0.0))}
        for name, q in QUANTILES.items():
            out[name] = values[int(np.argmax(cdf >= q))]
        result = {k: np.full((1, 1, 1), v, np.float64) for k, v in out.items()}
        result["count"] = np.array([self._frames], np.int64)
        return result
