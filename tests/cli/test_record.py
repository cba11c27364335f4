"""`streamrec record`: flags from dataclasses, real recordings in a subprocess, and Ctrl-C."""

from __future__ import annotations

import enum
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest

from helpers.frames import FOOTAGE, episodes, frames_of_episode, read_id, write_id_video
from streamrec import EncoderConfig, QueueFullPolicy
from streamrec.cli import _flags
from streamrec.cli.__main__ import main
from streamrec.cli._record import RecordConfig

FPS = 30
needs_sim = pytest.mark.skipif(importlib.util.find_spec("gym_aloha") is None,
                               reason="gym-aloha not installed (pip install 'streamrec[sim]')")
needs_rerun = pytest.mark.skipif(importlib.util.find_spec("rerun") is None,
                                 reason="rerun-sdk not installed (pip install 'streamrec[display]')")
SMALL = "{top: {type: synthetic, width: 128, height: 96}, wrist: {width: 128, height: 96}}"
QUICK = ["--dataset.camera_encoder.vcodec=h264", "--dataset.camera_encoder.preset=ultrafast",
         f"--dataset.fps={FPS}", "--dataset.reset_time_s=0", "--dataset.single_task=insert the peg"]
CAPTURE_KEYS = ("observation.images.top.capture_time", "observation.images.wrist.capture_time")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "streamrec.cli", "record", *args]


def run_cli(*args: str, timeout: float = 60, screen: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    if not screen:  # a headless machine: --display_data saves an .rrd instead of spawning the viewer
        for name in ("DISPLAY", "WAYLAND_DISPLAY"):
            env.pop(name, None)
    return subprocess.run(command(*args), capture_output=True, text=True, env=env, timeout=timeout)


def verify(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamrec.cli", "verify", str(root)], capture_output=True,
                          text=True, timeout=60)


def data_table(root: Path):
    return pq.read_table(root / "data/chunk-000/file-000.parquet")


# -- _flags on a small tree -----------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, kw_only=True)
class Inner:
    level: int = 1
    """How deep, in floors."""
    ratio: int | float | None = 0.5
    """A number or null."""


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str
    """Required text."""
    on: bool = False
    color: Color = Color.RED
    """Paint."""
    options: dict[str, str] = field(default_factory=dict)
    inner: Inner = field(default_factory=lambda: Inner(level=7))


def test_flags_from_a_dataclass_tree() -> None:
    names = {f.name: f for f in _flags.flags_of(Outer)}
    assert list(names) == ["name", "on", "color", "options", "inner.level", "inner.ratio"]
    assert names["inner.level"].default == 7  # the section's default_factory, not the class default
    assert names["inner.level"].help == "How deep, in floors."
    assert names["name"].required and names["inner.ratio"].type_name == "int|float|null"

    config = _flags.parse(Outer, ["--name", "x", "--on", "--color=blue", "--options={threads: 4, tune: film}",
                                  "--inner.ratio=null"])
    assert config == Outer(name="x", on=True, color=Color.BLUE, options={"threads": "4", "tune": "film"},
                           inner=Inner(level=7, ratio=None))
    assert _flags.parse(Outer, ["--name=y", "--inner.ratio=3"]).inner.ratio == 3
    assert _flags.parse(Outer, ["--name=y", "--inner.ratio=2.5", "--on=0"]).inner == Inner(level=7, ratio=2.5)


@pytest.mark.parametrize("argv, message", [
    (["--name=x", "--inner.levl=3"], r"^--inner\.levl: unknown flag; did you mean --inner\.level\?$"),
    (["--name=x", "--inner.level=abc"], r"^--inner\.level=abc: expected an integer$"),
    (["--name=x", "--on=maybe"], r"^--on=maybe: expected true or false \(or 1/0\)$"),
    (["--name=x", "--color=green"], r"^--color=green: expected one of \['red', 'blue'\]$"),
    (["--name=x", "--inner.ratio=lots"], r"^--inner\.ratio=lots: expected null or an integer or a number$"),
    (["--name=x", "--options=[1, 2]"], r"^--options=\[1, 2\]: expected a YAML mapping"),
    (["--name=x", "--inner=3"], r"^--inner: is a group of flags"),
    (["--on"], r"^missing required flag\(s\): --name=<str>$"),
    (["--name=x", "--name=y"], r"^--name: given twice"),
    (["name=x"], r"^name=x: unexpected argument"),
])
def test_flag_errors(argv: list[str], message: str) -> None:
    with pytest.raises(_flags.FlagError, match=message):
        _flags.parse(Outer, argv)


def test_record_config_from_flags() -> None:
    config = _flags.parse(RecordConfig, [
        "--dataset.root=out", "--dataset.single_task=insert the peg", "--dataset.fps=15",
        "--dataset.camera_encoder.vcodec=h264", "--dataset.camera_encoder.crf", "23",
        "--dataset.encoder-threads=2", "--dataset.queue_full_policy=block", "--report-json=r.json",
        "--cameras={top: {type: synthetic, width: 64, height: 48}, wrist: {type: synthetic}}"])
    assert config.dataset.fps == 15 and config.dataset.encoder_threads == 2 and config.report_json == "r.json"
    assert config.dataset.camera_encoder == EncoderConfig(vcodec="h264", crf=23)
    assert config.dataset.queue_full_policy is QueueFullPolicy.BLOCK
    assert (config.cameras["top"].width, config.cameras["wrist"].width) == (64, 640)
    with pytest.raises(_flags.FlagError, match=r"^--dataset\.camera_encoder\.vcodec=vp9: EncoderConfig\.vcodec = "
                       r"'vp9': must be one of"):
        _flags.parse(RecordConfig, ["--dataset.root=o", "--dataset.single_task=t", "--cameras={a: {}}",
                                    "--dataset.camera_encoder.vcodec=vp9"])


def test_sim_and_footage_cameras_do_not_mix() -> None:
    with pytest.raises(_flags.FlagError, match=r"^--cameras=.*: RecordConfig\.cameras: sim and footage cameras each "
                                               r"bring their own robot state"):
        _flags.parse(RecordConfig, ["--dataset.root=o", "--dataset.single_task=t",
                                    "--cameras={a: {type: sim}, b: {type: footage, path: x}}"])


def test_help_lists_every_flag_with_type_default_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["record", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in _flags.flags_of(RecordConfig):
        assert f"--{flag.name}  (" in out
    assert "--dataset.fps  (int; default: 30)" in out
    assert "--dataset.camera_encoder.vcodec  (str; default: libsvtav1)" in out
    assert "Encoder: `libsvtav1` (alias `av1`)" in out  # EncoderConfig's own attribute docstring
    assert "--dataset.root  (str; required)" in out and "footage:" in out and "max_frames" in out
    assert "opencv:" in out and "index_or_path  (int|str; required)" in out and "stall_timeout_s" in out
    assert "sim:" in out and "pip install 'streamrec[sim]'" in out and "shadows  (bool; default: false)" in out


# -- the command ----------------------------------------------------------------------------------


@pytest.mark.parametrize("flag, message", [
    ("--dataset.fpss=30", "--dataset.fpss: unknown flag; did you mean --dataset.fps?"),
    ("--dataset.fps=abc", "--dataset.fps=abc: expected an integer"),
    ("--dataset.camera_encoder.vcodec=vp9", "--dataset.camera_encoder.vcodec=vp9: EncoderConfig.vcodec = 'vp9': "
                                            "must be one of ("),
])
def test_bad_flags_exit_2(tmp_path: Path, flag: str, message: str) -> None:
    result = run_cli(f"--dataset.root={tmp_path / 'ds'}", "--dataset.single_task=t", f"--cameras={SMALL}", flag)
    assert result.returncode == 2
    assert result.stderr.startswith(f"streamrec record: {message}")
    assert "Traceback" not in result.stderr and not (tmp_path / "ds").exists()


def test_records_synthetic_cameras(tmp_path: Path) -> None:
    root, report = tmp_path / "demo", tmp_path / "report.json"
    started = time.time()
    result = run_cli(f"--dataset.root={root}", "--dataset.num_episodes=2", "--dataset.episode_time_s=1",
                     f"--cameras={SMALL}", f"--report-json={report}", *QUICK)
    assert result.returncode == 0, result.stderr
    # Not a terminal: one plain line per episode, then the summary.
    assert result.stdout.count("episode 1/2: ") == 1 and result.stdout.count("episode 2/2: ") == 1
    assert f"This session: 2 episode(s), {sum(ep['length'] for ep in episodes(root))} frames" in result.stdout
    assert f"The dataset {root} now holds 2 episode(s)" in result.stdout

    eps = episodes(root)
    assert len(eps) == 2
    assert all(FPS - 3 <= ep["length"] <= FPS for ep in eps)  # a late tick on a busy machine costs a row
    info = json.loads((root / "meta/info.json").read_text())
    for key in CAPTURE_KEYS:
        assert info["features"][key]["dtype"] == "float64" and info["features"][key]["shape"] == [1]
    assert info["features"]["observation.images.top"]["shape"] == [96, 128, 3]
    assert info["features"]["observation.state"]["dtype"] == "float32"  # synthetic robot: table features

    table = data_table(root)
    for key in CAPTURE_KEYS:
        t = np.asarray(table.column(key).to_pylist(), np.float64).ravel()
        assert started < t.min() and t.max() < time.time()
        first = np.diff(t[: eps[0]["length"]])
        assert (first > 0).all() and abs(np.median(first) - 1 / FPS) < 0.01

    figures = json.loads(report.read_text())
    assert [e["frames"] for e in figures["episodes"]] == [ep["length"] for ep in eps]
    for e in figures["episodes"]:
        assert set(e["dropped"]) == {"observation.images.top", "observation.images.wrist"}
        assert set(e["adaptations"]) <= set(e["dropped"])  # cameras that stepped up, with what and when
        assert e["save_s"] > 0 and 0 < e["add_frame_p50_ms"] <= e["add_frame_p99_ms"]
        assert e["frames"] + e["late_ticks"] == FPS

    checked = verify(root)
    assert checked.returncode == 0, checked.stdout


@pytest.mark.skipif(not FOOTAGE.is_dir(), reason=f"footage clip not present at {FOOTAGE}")
def test_records_footage_with_its_state(tmp_path: Path) -> None:
    root = tmp_path / "aloha"
    cameras = (f"{{top: {{type: footage, path: '{FOOTAGE}', max_frames: 20}}, "
               f"wrist: {{type: footage, path: '{FOOTAGE}', camera: left_wrist, max_frames: 20}}}}")
    result = run_cli(f"--dataset.root={root}", "--dataset.num_episodes=1", "--dataset.episode_time_s=1",
                     f"--cameras={cameras}", *QUICK)
    assert result.returncode == 0, result.stderr
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"]["observation.state"]["shape"] == [14]
    assert info["features"]["observation.images.wrist"]["shape"] == [480, 640, 3]

    data = np.load(FOOTAGE / "data.npz")
    table = data_table(root)
    rows = np.arange(table.num_rows) % 20  # one clip frame per row, looping after 20
    np.testing.assert_array_equal(np.stack(table.column("observation.state").to_numpy(zero_copy_only=False)),
                                  data["observation.state"][rows])
    np.testing.assert_array_equal(np.stack(table.column("action").to_numpy(zero_copy_only=False)),
                                  data["action"][rows])
    assert verify(root).returncode == 0


@pytest.mark.parametrize("save_partial", [False, True])
def test_sigint_finalizes(tmp_path: Path, save_partial: bool) -> None:
    root = tmp_path / "ds"
    proc = subprocess.Popen(
        command(f"--dataset.root={root}", "--dataset.num_episodes=3", "--dataset.episode_time_s=2",
                f"--dataset.save_partial_episode={str(save_partial).lower()}", f"--cameras={SMALL}", *QUICK),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("episode 1/3: "):
                break
        time.sleep(0.7)  # well inside episode 2 (reset time is 0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "stopped by SIGINT" in out

    lengths = [ep["length"] for ep in episodes(root)]
    if save_partial:
        assert len(lengths) == 2 and lengths[0] >= 2 * FPS - 3 and 0 < lengths[1] < 2 * FPS - 3
        assert "episode 2/3 (partial): " in out
    else:
        assert len(lengths) == 1 and lengths[0] >= 2 * FPS - 3
        assert "episode 2/3: stopped after" in out and "discarded" in out
    assert verify(root).returncode == 0


def test_an_encoder_killed_mid_episode_is_replaced_and_the_episode_recorded_again(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    proc = subprocess.Popen(command(f"--dataset.root={root}", "--dataset.num_episodes=3", "--dataset.episode_time_s=2",
                                    f"--cameras={SMALL}", *QUICK),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("episode 1/3: "):
                break
        time.sleep(0.7)  # inside episode 2
        encoders = [p for p in psutil.Process(proc.pid).children()
                    if "streamrec.encode._child" in " ".join(p.cmdline())]
        assert len(encoders) == 2
        encoders[1].kill()  # like the kernel's OOM killer
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "a new encoder process took over" in err and "recording it again" in err
    lengths = [ep["length"] for ep in episodes(root)]
    assert len(lengths) == 3 and all(n >= 2 * FPS - 3 for n in lengths)
    assert verify(root).returncode == 0


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="OpenCV not installed "
                    "(pip install 'streamrec[opencv]')")
def test_records_a_video_file_through_opencv(tmp_path: Path) -> None:
    clip = write_id_video(tmp_path / "clip.mp4", frames=64, height=120, width=160, fps=FPS)
    root = tmp_path / "ds"
    result = run_cli(f"--dataset.root={root}", "--dataset.num_episodes=1", "--dataset.episode_time_s=1",
                     f"--cameras={{cam: {{type: opencv, index_or_path: '{clip}'}}}}", *QUICK)
    assert result.returncode == 0, result.stderr
    assert "cam 160x120 opencv" in result.stdout
    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"]["observation.images.cam"]["shape"] == [120, 160, 3]  # the file's size
    ep = episodes(root)[0]
    ids = [read_id(f) for f in frames_of_episode(root, ep, "observation.images.cam", FPS)]
    assert len(set(ids)) > FPS // 2  # the clip plays; a frame may repeat when the loop and the file beat
    checked = verify(root)
    assert checked.returncode == 0, checked.stdout

    # A clip played at half the loop's rate: every other row holds the previous frame again, and says so.
    slow = tmp_path / "slow"
    report = tmp_path / "slow.json"
    result = run_cli(f"--dataset.root={slow}", "--dataset.num_episodes=1", "--dataset.episode_time_s=1",
                     f"--cameras={{cam: {{type: opencv, index_or_path: '{clip}', fps: 15}}}}",
                     f"--report-json={report}", *QUICK)
    assert result.returncode == 0, result.stderr
    repeated = json.loads(report.read_text())["episodes"][0]["stale"]["observation.images.cam"]
    ep = episodes(slow)[0]
    ids = [read_id(f) for f in frames_of_episode(slow, ep, "observation.images.cam", FPS)]
    assert repeated == sum(a == b for a, b in zip(ids, ids[1:])) and repeated >= ep["length"] // 3
    assert f"cam {repeated} stale frame(s)" in result.stdout

    missing = run_cli(f"--dataset.root={tmp_path / 'none'}", "--dataset.num_episodes=1",
                      f"--cameras={{wrist: {{type: opencv, index_or_path: '{tmp_path / 'nope.mp4'}'}}}}", *QUICK)
    assert missing.returncode == 1
    assert missing.stderr.startswith(f"streamrec record: camera 'wrist' (opencv): could not open: "
                                     f"{tmp_path / 'nope.mp4'} does not exist")
    assert "Traceback" not in missing.stderr and not (tmp_path / "none").exists()


def test_records_through_pngs_in_batches(tmp_path: Path) -> None:
    root = tmp_path / "png"
    result = run_cli(f"--dataset.root={root}", "--dataset.num_episodes=3", "--dataset.episode_time_s=0.5",
                     "--dataset.streaming_encoding=false", "--dataset.video_encoding_batch_size=2",
                     f"--cameras={SMALL}", *QUICK)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("episode 1/3: ") and "(video waits for the batch of 2)" in line for line in lines)
    assert any(line.startswith("episode 2/3: ") and "(encoded episodes 0-1)" in line for line in lines)
    assert any(line.startswith("episode 3/3: ") and "(video waits for the batch of 2)" in line for line in lines)
    assert len(episodes(root)) == 3  # the last one encoded by finalize
    assert not (root / ".streamrec").exists()
    checked = verify(root)
    assert checked.returncode == 0, checked.stdout


def test_streaming_refuses_a_batch_size(tmp_path: Path) -> None:
    result = run_cli(f"--dataset.root={tmp_path / 'ds'}", "--dataset.video_encoding_batch_size=3",
                     f"--cameras={SMALL}", *QUICK)
    assert result.returncode == 2
    assert "--dataset.video_encoding_batch_size=3: " in result.stderr
    assert "streaming encoding encodes every episode while it is recorded" in result.stderr


@needs_sim
def test_records_sim_cameras_with_moving_arms(tmp_path: Path) -> None:
    root = tmp_path / "sim"
    cameras = ("{top: {type: sim, width: 160, height: 120}, "
               "wrist: {type: sim, camera: left_wrist, width: 160, height: 120}}")
    result = run_cli(f"--dataset.root={root}", "--dataset.num_episodes=1", "--dataset.episode_time_s=2",
                     f"--cameras={cameras}", *QUICK, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "top 160x120 sim, wrist 160x120 sim" in result.stdout
    checked = verify(root)
    assert checked.returncode == 0, checked.stdout

    info = json.loads((root / "meta/info.json").read_text())
    assert info["features"]["observation.images.wrist"]["shape"] == [120, 160, 3]
    for key in ("observation.state", "action"):
        assert info["features"][key]["shape"] == [14] and info["features"][key]["names"][0] == "left_arm_waist"
    table = data_table(root)
    states = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False))
    actions = np.stack(table.column("action").to_numpy(zero_copy_only=False))
    assert states.shape == actions.shape == (table.num_rows, 14) and table.num_rows > FPS // 2
    assert np.ptp(states[:, :6], axis=0).max() > 0.02  # the arm moved...

    ep = episodes(root)[0]
    for key in ("observation.images.top", "observation.images.wrist"):
        frames = frames_of_episode(root, ep, key, FPS)
        assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 1  # ...and the video shows it


@needs_rerun
def test_display_without_a_screen_saves_an_rrd_next_to_the_dataset(tmp_path: Path) -> None:
    from rerun.chunk import RrdReader

    root, report = tmp_path / "ds", tmp_path / "report.json"
    result = run_cli(f"--dataset.root={root}", "--dataset.num_episodes=2", "--dataset.episode_time_s=1",
                     f"--cameras={SMALL}", "--display_data=true", f"--report-json={report}", *QUICK, screen=False)
    assert result.returncode == 0, result.stderr
    rrd = tmp_path / "ds.rrd"
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert f"live display: saving to {rrd} (no screen here)" in out
    assert f"Live display saved to {rrd}; open it with: rerun {rrd}" in out
    assert verify(root).returncode == 0  # the dataset folder holds nothing extra

    figures = json.loads(report.read_text())
    rows = sum(e["frames"] for e in figures["episodes"])
    display = figures["display"]
    assert display["offered"] == rows and display["logged"] + display["dropped"] == rows
    assert display["rrd"] == str(rrd) and display["error"] is None
    assert all(e["display_offer_p50_ms"] <= e["display_offer_p99_ms"] for e in figures["episodes"])

    chunks = list(RrdReader(rrd).stream())
    paths = {c.entity_path for c in chunks}
    assert {"/observation.images.top", "/observation.images.wrist", "/observation.state", "/action"} <= paths
    timelines = set().union(*(c.timeline_names for c in chunks if c.entity_path == "/observation.state"))
    assert {"index", "episode_index", "frame_index", "capture_time"} <= timelines
    scalars = sum(c.num_rows for c in chunks if c.entity_path == "/observation.state" and not c.is_static)
    assert scalars == display["logged"]

    one = ["--dataset.num_episodes=1", "--dataset.episode_time_s=0.3", f"--cameras={SMALL}", *QUICK]
    again = run_cli(f"--dataset.root={tmp_path / 'ds2'}", "--display_data=true", *one, screen=False)
    assert again.returncode == 0, again.stderr  # another root, another .rrd
    clash = run_cli(f"--dataset.root={tmp_path / 'ds'}", "--display_data", *one, screen=False)
    assert clash.returncode == 1 and "is not empty" in clash.stderr
    (tmp_path / "ds3.rrd").write_bytes(b"")
    taken = run_cli(f"--dataset.root={tmp_path / 'ds3'}", "--display_data", *one, screen=False)
    assert taken.returncode == 1 and not (tmp_path / "ds3").exists()
    assert " ".join(taken.stderr.split()).startswith(
        f"streamrec record: --display_data=true: there is no screen here (DISPLAY and WAYLAND_DISPLAY are unset), so "
        f"the display is saved to {tmp_path / 'ds3.rrd'}, which exists already")


def test_display_without_rerun_says_how_to_install(tmp_path: Path) -> None:
    hide = "import sys; sys.modules['rerun'] = None; from streamrec.cli.__main__ import main; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", hide, "record", f"--dataset.root={tmp_path / 'ds'}",
                             "--dataset.num_episodes=1", f"--cameras={SMALL}", "--display_data=true", *QUICK],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 2
    assert result.stderr.startswith("streamrec record: RecordConfig.display_data = True: the live display needs "
                                    "rerun-sdk, which is not installed")
    assert "pip install 'streamrec[display]'" in result.stderr and not (tmp_path / "ds").exists()


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="OpenCV not installed "
                    "(pip install 'streamrec[opencv]')")
def test_a_camera_that_disconnects_mid_episode_ends_the_recording_keeping_the_partial_episode(tmp_path: Path) -> None:
    # The file behind an opencv camera disappears while it plays: once it ends it cannot be
    # reopened, the camera stalls, and the recording stops naming it. The other camera went on
    # until then; with --dataset.save_partial_episode=true what both delivered is kept.
    clip = write_id_video(tmp_path / "clip.mp4", frames=45, height=96, width=128, fps=FPS)
    root = tmp_path / "ds"
    cameras = (f"{{cam: {{type: opencv, index_or_path: '{clip}', stall_timeout_s: 0.5}}, "
               "top: {width: 128, height: 96}}")
    proc = subprocess.Popen(command(f"--dataset.root={root}", "--dataset.num_episodes=2", "--dataset.episode_time_s=6",
                                    "--dataset.save_partial_episode=true", f"--cameras={cameras}", *QUICK),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("recording "):
                clip.unlink()
                break
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    message = " ".join(err.split())
    assert "camera 'cam' (opencv): no new frame from file" in message and "could not reopen" in message
    assert "finalizing with the 1 episode(s) saved so far" in message
    assert "episode 1/2 (partial)" in out and "up to the camera failure" in out
    eps = episodes(root)
    assert len(eps) == 1 and FPS <= eps[0]["length"] < 6 * FPS
    assert verify(root).returncode == 0


def test_resume_adds_episodes_to_a_recorded_dataset(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    first = run_cli(f"--dataset.root={root}", "--dataset.num_episodes=1", "--dataset.episode_time_s=0.5",
                    f"--cameras={SMALL}", *QUICK)
    assert first.returncode == 0, first.stderr
    again = run_cli(f"--dataset.root={root}", "--dataset.num_episodes=1", "--dataset.episode_time_s=0.5",
                    f"--cameras={SMALL}", *QUICK)
    assert again.returncode == 1 and "add episodes to the dataset in it with --resume=true" in again.stderr
    more = run_cli(f"--dataset.root={root}", "--dataset.num_episodes=2", "--dataset.episode_time_s=0.5",
                   "--resume=true", f"--cameras={SMALL}", *QUICK)
    assert more.returncode == 0, more.stderr
    assert [e["episode_index"] for e in episodes(root)] == [0, 1, 2]
    assert verify(root).returncode == 0
    other_fps = run_cli(f"--dataset.root={root}", "--resume=true", "--dataset.fps=15", f"--cameras={SMALL}",
                        *[q for q in QUICK if not q.startswith("--dataset.fps")])
    assert other_fps.returncode == 1
    assert "resume: fps = 15, but the dataset was recorded at 30 fps" in other_fps.stderr
    nothing = run_cli(f"--dataset.root={tmp_path / 'none'}", "--resume=true", f"--cameras={SMALL}", *QUICK)
    assert nothing.returncode == 1 and "holds no dataset (no meta/info.json)" in nothing.stderr
    assert len(episodes(root)) == 3
