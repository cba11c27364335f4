"""Previews of what a browser cannot play: HEVC, 10- to 16-bit or 4:4:4 streams, and depth.

A preview is one episode of one camera transcoded to H.264 4:2:0 (which every browser plays),
starting at time 0, one frame per row at the dataset's fps. Depth becomes a colour map so near
and far can be told apart at a glance. Previews go to a cache folder outside the dataset, keyed by
the source file's identity (path, size, mtime) and the span, and are written under a temporary
name then renamed, so an interrupted transcode never leaves a half file that looks finished.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

PREVIEW_VERSION = 1
"""Part of every cache key: bump when previews are made differently."""

# Codec -> pixel formats Chromium, Firefox and Safari decode in software on every platform.
_PLAYABLE = {
    "h264": {"yuv420p", "yuvj420p"},
    "av1": {"yuv420p", "yuvj420p", "yuv420p10le"},
    "vp9": {"yuv420p", "yuvj420p", "yuv420p10le"},
}

# Anchors of the depth colour map (position, RGB): near is warm, far is cold, so a hand in front of
# the camera stands out against the table; no reading (0) stays black.
_ANCHORS = ((0.0, (180, 4, 38)), (0.25, (244, 109, 67)), (0.5, (254, 224, 144)), (0.75, (116, 173, 209)),
            (1.0, (49, 54, 149)))


def colour_lut(size: int = 256) -> np.ndarray:
    """`size` RGB colours from near to far, interpolated between `_ANCHORS`."""
    x = np.linspace(0.0, 1.0, size)
    pos = [a[0] for a in _ANCHORS]
    return np.stack([np.interp(x, pos, [a[1][c] for a in _ANCHORS]) for c in range(3)], axis=1).astype(np.uint8)


@dataclass(frozen=True, slots=True)
class StreamInfo:
    codec: str
    pix_fmt: str | None
    width: int
    height: int


def probe(path: Path) -> StreamInfo:
    """The first video stream's codec and pixel format, from the MP4's header (nothing decoded)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return StreamInfo(codec=_codec_family(s.codec_context.name), pix_fmt=s.codec_context.pix_fmt,
                          width=s.codec_context.width, height=s.codec_context.height)


def preview_reason(stream: StreamInfo, is_depth: bool) -> str | None:
    """Why this stream needs a preview, or None when browsers play it as it is."""
    if is_depth:
        return f"depth ({stream.codec} {stream.pix_fmt}) shown as a colour map"
    allowed = _PLAYABLE.get(stream.codec)
    if allowed is None:
        return f"{stream.codec} is not played by browsers; transcoded to H.264"
    if stream.pix_fmt not in allowed:
        return f"{stream.codec} {stream.pix_fmt} is not played by browsers; transcoded to H.264 yuv420p"
    return None


def _codec_family(name: str) -> str:
    # PyAV names a stream's codec after the decoder it picked, which may be a library (libdav1d for AV1).
    return {"libdav1d": "av1", "libaom-av1": "av1", "libvpx-vp9": "vp9"}.get(name, name)


def cache_key(path: Path, from_s: float, to_s: float, fps: float, is_depth: bool) -> str:
    st = path.stat()
    ident = f"{PREVIEW_VERSION}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{from_s!r}|{to_s!r}|{fps!r}|{is_depth}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "streamrec" / "view"


def make_preview(src: Path, dst: Path, *, from_s: float, to_s: float, fps: float, is_depth: bool,
                 progress: Callable[[int], None] | None = None) -> int:
    """Transcode the frames of `src` in `[from_s, to_s)` to an H.264 MP4 at `dst`; returns frames written.

    Frame k of the preview has pts k / fps, so the page seeks the preview as it would an episode
    that starts at 0.
    """
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    dst.parent.mkdir(parents=True, exist_ok=True)
    half = 0.5 / fps
    try:
        depth_range = _depth_range(src, from_s, to_s, half) if is_depth else None
        lut = colour_lut() if is_depth else None
        written = 0
        rate = Fraction(fps).limit_denominator(1001)
        with av.open(str(src)) as inp, av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            s = inp.streams.video[0]
            w, h = s.codec_context.width // 2 * 2, s.codec_context.height // 2 * 2
            enc = out.add_stream("libx264", rate=rate)
            enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
            # A key frame every half second: the page seeks often, and a short GOP makes each seek cheap.
            enc.options = {"preset": "veryfast", "crf": "20", "g": str(max(1, round(fps / 2))), "bf": "0"}
            enc.codec_context.time_base = 1 / rate
            for frame in _frames_in(inp, s, from_s, to_s, half):
                if lut is not None:
                    rgb = _colourise(frame, depth_range, lut)[:h, :w]
                else:
                    rgb = frame.to_ndarray(format="rgb24")[:h, :w]
                out_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                out_frame.pts = written
                out_frame.time_base = 1 / rate
                out.mux(enc.encode(out_frame))
                written += 1
                if progress is not None:
                    progress(written)
            out.mux(enc.encode())
        os.replace(tmp, dst)
        return written
    finally:
        tmp.unlink(missing_ok=True)


def _frames_in(container, stream, from_s: float, to_s: float, half: float):
    tb = stream.time_base
    if from_s > 0:
        container.seek(int(from_s / tb), stream=stream, backward=True)
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        t = float(frame.pts * tb)
        if t < from_s - half:
            continue
        if t >= to_s - half:
            break
        yield frame


def _depth_values(frame) -> tuple[np.ndarray, float]:
    """The depth codes of a frame as stored (12-bit depth stays 0..4095), and the largest code."""
    fmt = frame.format.name
    if fmt.startswith(("gray", "yuv")) and fmt.endswith(("le", "be")):
        plane = frame.planes[0]
        dtype = np.dtype("<u2" if fmt.endswith("le") else ">u2")
        raw = np.frombuffer(plane, dtype=dtype).reshape(frame.height, plane.line_size // 2)
        bits = int(re.search(r"(\d+)(?:le|be)$", fmt).group(1))
        return raw[:, :frame.width].astype(np.float32), float(2**bits - 1)
    if fmt == "gray":
        return frame.to_ndarray().astype(np.float32), 255.0
    return frame.to_ndarray(format="gray").astype(np.float32), 255.0


def _valid(values: np.ndarray, top: float) -> np.ndarray:
    # "No reading" is stored as 0, but lossy coding turns it into small codes; 1/256 of the range
    # (0.26 m for 16-bit millimetres) is below what depth cameras measure, so nothing real is lost.
    return values > top / 256


def _depth_range(src: Path, from_s: float, to_s: float, half: float) -> tuple[float, float]:
    """Near and far ends of the colour map: the 2nd and 98th percentile of valid depth
    over up to 32 frames spread through the span, so one episode keeps one scale."""
    samples = []
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        step = max(1, round((to_s - from_s) / (2 * half)) // 32)
        for i, frame in enumerate(_frames_in(c, s, from_s, to_s, half)):
            if i % step == 0:
                v, top = _depth_values(frame)
                v = v[::4, ::4]
                samples.append(v[_valid(v, top)])
    values = np.concatenate(samples) if samples else np.zeros(0, np.float32)
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [2, 98])
    return float(lo), float(max(hi, lo + 1))


def _colourise(frame, depth_range: tuple[float, float], lut: np.ndarray) -> np.ndarray:
    v, top = _depth_values(frame)
    lo, hi = depth_range
    idx = np.clip((v - lo) * ((len(lut) - 1) / (hi - lo)), 0, len(lut) - 1).astype(np.intp)
    rgb = lut[idx]
    rgb[~_valid(v, top)] = 0
    return rgb
