"""The settings adaptive overload steps through, measured alone: CPU per frame, bytes and PSNR.

Encodes the first 60 frames of two footage cameras, upscaled to `--width`x`--height` (default
1280x720), with each setting in turn, in this process, one after the other, then decodes them and
compares with the frames fed. CPU is this process's user + system time over the encode (the
codec's threads included; conversion from RGB included). The figures behind `_codecs.ENCODERS`'s
overload steps and docs/design.md.

    .venv/bin/python benchmarks/overload_steps.py [--width 1280 --height 720]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys

import av
import numpy as np

from _footage import FOOTAGE, load_video, psnr
from streamrec import EncoderConfig
from streamrec.encode._codecs import open_codec, open_decoder

SETTINGS = (  # (label, config, encoder_threads)
    ("libsvtav1 preset 12", EncoderConfig(vcodec="libsvtav1", preset=12), None),
    ("libsvtav1 preset 12, 1 thread", EncoderConfig(vcodec="libsvtav1", preset=12), 1),
    ("libsvtav1 preset 13", EncoderConfig(vcodec="libsvtav1", preset=13), None),
    ("libsvtav1 preset 10", EncoderConfig(vcodec="libsvtav1", preset=10), None),
    ("libx264 veryfast crf 30", EncoderConfig(vcodec="libx264", preset="veryfast", crf=30), None),
    ("libx264 veryfast crf 23", EncoderConfig(vcodec="libx264", preset="veryfast", crf=23), None),
    ("libx264 ultrafast crf 23", EncoderConfig(vcodec="libx264", preset="ultrafast", crf=23), None),
)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(config: EncoderConfig, threads: int | None, frames: list[np.ndarray]) -> dict:
    height, width = frames[0].shape[:2]
    ctx = open_codec(config, width, height, 30, threads)
    packets = []
    c0 = cpu_s()
    for i, a in enumerate(frames):
        f = av.VideoFrame.from_ndarray(a, format="rgb24")
        f.pts = i
        packets += ctx.encode(f)
    packets += ctx.encode(None)
    cpu = cpu_s() - c0
    decoder = open_decoder(config.stream_codec)
    out = [f.to_ndarray(format="rgb24") for p in packets for f in decoder.decode(av.Packet(bytes(p)))]
    out += [f.to_ndarray(format="rgb24") for f in decoder.decode(None)]
    assert len(out) == len(frames), f"{len(out)} frames decoded of {len(frames)}"
    return {"cpu_ms_per_frame": round(cpu / len(frames) * 1e3, 1),
            "kb_per_frame": round(sum(p.size for p in packets) / len(frames) / 1e3, 1),
            "psnr_db_mean": round(float(np.mean([psnr(a, b) for a, b in zip(frames, out)])), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    args = ap.parse_args()
    if not FOOTAGE.exists():
        sys.exit(f"footage not found at {FOOTAGE}")
    video = load_video(FOOTAGE, 60, ("top", "left_wrist"), (args.width, args.height))
    results = {label: {camera: measure(config, threads, frames) for camera, frames in video.items()}
               for label, config, threads in SETTINGS}
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()},
                      "size": f"{args.width}x{args.height}", "frames": 60, "results": results}, indent=2))


if __name__ == "__main__":
    main()
