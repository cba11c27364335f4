"""Depth: round-trip error per storage mode, side by side with LeRobot 0.6.1's writer, and each mode's cost.

    .venv/bin/python benchmarks/depth_roundtrip.py [--frames 15] [--cost-frames 90] [--out benchmarks/results]

Accuracy, on the same frames (a synthetic depth scene with a stereo sensor's noise and holes, and the MuJoCo depth
of the sim's `top` camera; 640x480, two episodes each), written three ways:
- streamrec 12-bit (DepthEncoderConfig(): hevc gray12le lossless) by streamrec's recorder (one colour and one
  depth camera), read back by streamrec and by LeRobot's `LeRobotDataset` (and /work/shared/tools/lerobot-load-check);
- streamrec exact (DepthEncoderConfig(vcodec="ffv1"): gray16le), read back by streamrec; and what LeRobot does
  with it;
- LeRobot's own writer (LeRobotDataset.create + add_frame + save_episode, streaming, default encoders), loaded by
  LeRobot.
Errors are |returned - recorded| in mm over the pixels with a reading inside the quantizer's range (10 mm..10 m);
"no reading" (0) and beyond-range pixels are reported apart.

Cost: each mode encodes the same 640x480 frames with one thread; CPU per frame (quantizer included) and MB per
camera-minute at 30 fps, as is and without CAP_SYS_NICE (capsh), in one run. The real-time figures (a paced
recording of a colour and a depth camera) are benchmarks/depth_realtime.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from streamrec import DatasetRecorder, DepthEncoderConfig
from streamrec.capture import SimCameraConfig, SyntheticDepthCameraConfig, SyntheticDepthSource, camera_sources
from streamrec.capture._sim import sim_world
from streamrec.encode._depth import LEROBOT_QUANTIZER, DepthFrames, read_depth_video, stored_to_mm

LEROBOT_PY = Path(os.environ.get("LEROBOT_VENV", Path.home() / ".cache/streamrec-lerobot-venv")) / "bin/python"
LOAD_CHECK = Path(__file__).resolve().parents[2] / "shared" / "tools" / "lerobot-load-check"
HERE = Path(__file__).resolve().parent
DEPTH_KEY, RGB_KEY = "observation.images.depth", "observation.images.rgb"
FPS, H, W = 30, 480, 640


def scenes(frames: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per scene: (N, H, W) uint16 mm depth and (N, H, W, 3) colour; N = 2 * frames (two episodes)."""
    synthetic = SyntheticDepthSource("depth", SyntheticDepthCameraConfig(width=W, height=H))
    synthetic.open()
    depth = np.stack([synthetic.frame(e * 1000 + i)[..., 0] for e in range(2) for i in range(frames)])
    out = {"synthetic": (depth, rgb_of(depth))}
    try:
        out["sim_top"] = sim_frames(2 * frames, steps_between=3)
    except Exception as e:  # noqa: BLE001 - the sim extra is optional
        print(f"sim depth skipped: {e}", file=sys.stderr)
    return out


def sim_frames(n: int, steps_between: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """`n` frames of the sim's `top` camera, colour and depth of the same tick; the arms move between frames."""
    config = SimCameraConfig(camera="top", width=W, height=H, depth=True)
    world = sim_world({"top": config}, fps=FPS)
    colour, depth = camera_sources("top", config, world=world)
    colour.open()
    depth.open()
    try:
        rgb, mm = [], []
        for _ in range(n):
            rgb.append(colour.read().copy())
            mm.append(depth.read()[..., 0].copy())
            for _ in range(steps_between):
                world.step(world.action())
    finally:
        depth.close()
        colour.close()
    return np.stack(mm), np.stack(rgb)


def rgb_of(depth: np.ndarray) -> np.ndarray:
    grey = (np.minimum(depth, 4000) // 16).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def write_streamrec(root: Path, depth: np.ndarray, rgb: np.ndarray, config: DepthEncoderConfig, frames: int) -> None:
    features = {RGB_KEY: {"dtype": "video", "shape": [H, W, 3]},
                DEPTH_KEY: {"dtype": "video", "shape": [H, W, 1], "info": {"is_depth_map": True}}}
    rec = DatasetRecorder.create(root, FPS, features, depth_encoder=config, queue_full_policy="block")
    for i in range(len(depth)):
        rec.add_frame({RGB_KEY: rgb[i], DEPTH_KEY: depth[i][..., None], "task": "depth"})
        if (i + 1) % frames == 0:
            rec.save_episode()
    rec.finalize()


def errors(returned: np.ndarray, recorded: np.ndarray) -> dict:
    valid = (recorded >= 10) & (recorded <= 10000)
    diff = np.abs(returned.astype(np.float64) - recorded.astype(np.float64))
    relative = diff[valid] / recorded[valid]
    return {"max_mm": float(diff[valid].max()), "mean_mm": float(diff[valid].mean()),
            "max_relative_pct": float(relative.max() * 100), "pixels": int(valid.sum()),
            "no_reading_pixels": int((recorded == 0).sum()),
            "no_reading_returned_mm": sorted({float(v) for v in np.unique(returned[recorded == 0])})[:5],
            "beyond_10m_pixels": int((recorded > 10000).sum()),
            "beyond_10m_max_error_mm": float(diff[recorded > 10000].max()) if (recorded > 10000).any() else None}


def lerobot(*args: str) -> dict:
    out = subprocess.run([str(LEROBOT_PY), str(HERE / "_lerobot_depth.py"), *args], capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"failed": out.stderr[-2000:]}


def load_check(root: Path) -> dict:
    out = subprocess.run([str(LOAD_CHECK), str(root), "--all"], capture_output=True, text=True)
    try:
        report = json.loads(out.stdout[out.stdout.index("{"):])
    except ValueError:
        report = {"output": (out.stdout + out.stderr)[-1500:]}
    report["exit_code"] = out.returncode
    return report


def lerobot_returned(npz: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(npz)
    return data[DEPTH_KEY], data["_rows"]


def accuracy(frames: int, work: Path) -> dict:
    results: dict = {}
    for scene, (depth, rgb) in scenes(frames).items():
        r: dict = {"frames": len(depth)}
        for name, config in (("streamrec_hevc12", DepthEncoderConfig()),
                             ("streamrec_ffv1", DepthEncoderConfig(vcodec="ffv1"))):
            root = work / f"{scene}-{name}"
            write_streamrec(root, depth, rgb, config, frames)
            video_path = root / "videos" / DEPTH_KEY / "chunk-000" / "file-000.mp4"
            video = read_depth_video(video_path)
            ours = np.stack([stored_to_mm(p, config) for p in video.pixels])
            stored = DepthFrames(config)
            entry = {"depth_file_bytes": video_path.stat().st_size, "streamrec_reader": errors(ours, depth),
                     # the codec adds nothing: the pixels decoded are the pixels encoded
                     "codec_adds_nothing": all(np.array_equal(p, stored.stored(d))
                                               for p, d in zip(video.pixels, depth))}
            loaded = lerobot("load", str(root), str(work / f"{scene}-{name}.npz"))
            entry["lerobot_load"] = loaded
            if loaded.get("loaded"):
                got, rows = lerobot_returned(work / f"{scene}-{name}.npz")
                entry["lerobot_loader"] = errors(got, depth[rows])
                entry["lerobot_vs_quantizer_round_trip_max_mm"] = float(
                    np.abs(got - LEROBOT_QUANTIZER.round_trip(depth[rows]).astype(np.float32)).max())
            entry["lerobot_load_check"] = load_check(root) if config.quantized else "not run: LeRobot refuses it"
            r[name] = entry
        folder = work / f"{scene}-frames"
        folder.mkdir()
        np.save(folder / "depth.npy", depth)
        np.save(folder / "rgb.npy", rgb)
        (folder / "episodes.json").write_text(json.dumps([[0, frames], [frames, frames]]))
        root = work / f"{scene}-lerobot"
        written = lerobot("write", str(folder), str(root), str(work / f"{scene}-lerobot.npz"))
        # cpu_s: add_frame + save_episode + finalize of both cameras (its encoder threads run in its process)
        entry = {k: v for k, v in written.items() if k in ("rows", "bytes", "cpu_s", "wall_s", "load", "failed")}
        if written.get("load", {}).get("loaded"):
            got, rows = lerobot_returned(work / f"{scene}-lerobot.npz")
            entry["lerobot_loader"] = errors(got, depth[rows])
            video = read_depth_video(root / "videos" / DEPTH_KEY / "chunk-000" / "file-000.mp4")
            entry["same_codes_as_streamrec"] = all(np.array_equal(p, LEROBOT_QUANTIZER.codes(d))
                                                   for p, d in zip(video.pixels, depth))
            entry["depth_info"] = written["depth_info"]
            entry["lerobot_load_check"] = load_check(root)
        r["lerobot_writer"] = entry
        results[scene] = r
    return results


COST_MODES = {
    "hevc12 ultrafast, ctu 64, min-cu 32 (streamrec's default)": DepthEncoderConfig(),
    "hevc12 ultrafast, its own ctu 32, min-cu 16": DepthEncoderConfig(
        extra_options={"x265-params": "lossless=1:ctu=32:min-cu-size=16"}),
    "hevc12 superfast": DepthEncoderConfig(preset="superfast"),
    "hevc12 medium (LeRobot's: x265's own)": DepthEncoderConfig(preset="medium"),
    "ffv1 gray16le (exact)": DepthEncoderConfig(vcodec="ffv1"),
}


def cost(frames: int) -> dict:
    """CPU per frame and bytes of each mode on the same frames, one encoder thread."""
    out = {}
    for scene, (depth, _) in scenes(frames // 2).items():
        per_mode = {}
        for name, config in COST_MODES.items():
            codec = config.open_codec(W, H, FPS, 1)
            to_frame = DepthFrames(config).to_frame
            cpu0, wall0 = time.process_time(), time.perf_counter()
            size = 0
            for k, mm in enumerate(depth):
                frame = to_frame(mm)
                frame.pts = k
                size += sum(p.size for p in codec.encode(frame))
            size += sum(p.size for p in codec.encode(None))
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            per_mode[name] = {"cpu_ms_per_frame": round(1000 * cpu / len(depth), 2),
                              "wall_ms_per_frame": round(1000 * wall / len(depth), 2),
                              "mb_per_camera_minute": round(size / len(depth) * FPS * 60 / 2**20, 1)}
        quant0 = time.process_time()
        for mm in depth:
            LEROBOT_QUANTIZER.codes(mm)
        per_mode["quantizer alone"] = {"cpu_ms_per_frame": round(1000 * (time.process_time() - quant0) / len(depth),
                                                                 3)}
        per_mode["raw uint16"] = {"mb_per_camera_minute": round(H * W * 2 * FPS * 60 / 2**20, 1)}
        out[scene] = per_mode
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=15, help="frames per episode (two episodes) for accuracy")
    ap.add_argument("--cost-frames", type=int, default=90)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--cost-only", action="store_true", help=argparse.SUPPRESS)  # the capsh child
    a = ap.parse_args()
    if a.cost_only:
        print(json.dumps(cost(a.cost_frames)))
        return
    report: dict = {"machine": {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg()}, "size": f"{W}x{H}",
                    "fps": FPS}
    work = Path(tempfile.mkdtemp(prefix="depth-roundtrip-"))
    try:
        report["accuracy"] = accuracy(a.frames, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["cost_as_is"] = cost(a.cost_frames)
    if shutil.which("capsh"):
        cmd = " ".join([sys.executable, str(Path(__file__).resolve()), "--cost-only", "--cost-frames",
                        str(a.cost_frames)])
        child = subprocess.run(["capsh", "--drop=cap_sys_nice", "--", "-c", cmd], capture_output=True, text=True)
        lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
        report["cost_without_cap_sys_nice"] = json.loads(lines[-1]) if lines else child.stderr[-1000:]
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / "depth_roundtrip.json"
    path.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
