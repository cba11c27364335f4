"""What each camera source costs: to read, and to encode, per 640x480 frame.

The synthetic source draws sensor-like noise that changes every frame, as a real camera's does;
the footage is rendered (no noise) and encodes cheaper. Tests and demos use the synthetic source,
so its cost against the footage is measured here, with each encoder the recorder would use:
SVT-AV1 at streamrec's default (preset 12), with one codec thread and with the codec's own
choice, and x264 veryfast (adaptive overload's step). Each source's frames are read first
(`read_into`, timed), then encoded in this process; CPU is the process's, all codec threads included.

    .venv/bin/python benchmarks/source_cost.py [--frames 300] [--rounds 2]

Prints one JSON object; benchmarks/results/source_cost.json keeps it. Needs ../shared/footage for
the footage rows (they are left out without it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import av
import numpy as np

from _footage import FOOTAGE, cap_sys_nice
from streamrec import EncoderConfig
from streamrec.capture import FootageCameraConfig, SyntheticCameraConfig, make_source
from streamrec.encode._codecs import open_codec
from streamrec.encode._priority import demote_current_thread

HERE = Path(__file__).resolve().parent
ENCODERS = {
    "libsvtav1 p12, 1 thread": (EncoderConfig(), 1),
    "libsvtav1 p12, codec's threads": (EncoderConfig(), None),
    "libx264 veryfast, 1 thread": (EncoderConfig(vcodec="libx264", preset="veryfast", crf=23), 1),
}


def read_frames(name: str, config, frames: int) -> tuple[list[np.ndarray], float]:
    source = make_source(name, config)
    source.open()
    try:
        buf = np.empty(source.shape, np.uint8)
        out, took = [], 0.0
        for _ in range(frames):
            t = time.perf_counter()
            source.read_into(buf)
            took += time.perf_counter() - t
            out.append(buf.copy())
        return out, took / frames
    finally:
        source.close()


def encode_cost(frames: list[np.ndarray], config: EncoderConfig, threads: int | None) -> dict[str, float]:
    h, w = frames[0].shape[:2]
    codec = open_codec(config, w, h, 30, threads)
    size = 0
    warm = 10  # a new encoder's first frames cost more: left out of the clock
    cpu = wall = 0.0
    for i, image in enumerate(frames):
        if i == warm:
            cpu, wall = time.process_time(), time.perf_counter()
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = i
        size += sum(p.size for p in codec.encode(frame))
    size += sum(p.size for p in codec.encode(None))
    n = len(frames) - warm
    return {"cpu_ms_per_frame": round((time.process_time() - cpu) / n * 1e3, 2),
            "wall_ms_per_frame": round((time.perf_counter() - wall) / n * 1e3, 2),
            "kbytes_per_frame": round(size / len(frames) / 1e3, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--footage", type=Path, default=FOOTAGE)
    args = ap.parse_args()
    caps = cap_sys_nice()  # before the demotion below drops it
    demote_current_thread()  # as an encoder process is: the comparison is at its priority
    sources = {"synthetic": ("cam", SyntheticCameraConfig(width=640, height=480))}
    if args.footage.is_dir():
        for cam in ("top", "angle", "left_wrist"):
            sources[f"footage {cam}"] = (cam, FootageCameraConfig(path=str(args.footage)))
    rows = []
    for rnd in range(1, args.rounds + 1):
        for label, (name, config) in sources.items():
            frames, read_s = read_frames(name, config, args.frames)
            for enc_label, (enc, threads) in ENCODERS.items():
                rows.append({"round": rnd, "source": label, "encoder": enc_label,
                             "read_ms": round(read_s * 1e3, 3), "load": round(os.getloadavg()[0], 2),
                             **encode_cost(frames, enc, threads)})
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for enc_label in ENCODERS:
        by_source = {}
        for label in sources:
            cpu = [r["cpu_ms_per_frame"] for r in rows if r["source"] == label and r["encoder"] == enc_label]
            by_source[label] = round(float(np.median(cpu)), 2)
        footage = [v for k, v in by_source.items() if k.startswith("footage")]
        summary[enc_label] = {"cpu_ms_per_frame": by_source,
                              "synthetic_over_footage_mean": round(by_source["synthetic"] / np.mean(footage), 2)
                              if footage else None}
    result = {"cap_sys_nice": caps, "frames": args.frames, "rows": rows, "summary": summary}
    (HERE / "results" / "source_cost.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
