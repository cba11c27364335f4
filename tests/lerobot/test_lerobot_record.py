"""`streamrec lerobot-record` end to end: LeRobot 0.6.1 makes the test robot and teleoperator (installed
plugin packages) and runs its own OpenCVCamera on id videos; streamrec records; the dataset is read back
frame by frame, and by LeRobot's own LeRobotDataset. Each run is a real process in the Python 3.12
environment (see tests/helpers/lerobot_run.py)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from helpers.frames import episodes
from helpers.lerobot_run import (
    H264,
    Terminal,
    check_rows,
    command,
    env,
    id_videos,
    interrupt,
    lerobot_bin,
    lerobot_loads_every_row,
    read_rows,
    run,
)
from streamrec import verify


def test_two_episodes_every_row_from_one_tick(tmp_path: Path) -> None:
    """Two episodes with the default encoder (SVT-AV1, streaming); the cameras stall every 7th tick.
    Flags that mean nothing here are accepted and named once."""
    sources = id_videos(tmp_path / "videos")
    root, report = tmp_path / "ds", tmp_path / "report.json"
    done = run(command(sources, root, episodes=2, seconds=2, extra=(
        "--robot.stall_every=7", "--dataset.streaming_encoding=true", "--dataset.num_image_writer_threads_per_camera=4",
        f"--report-json={report}")), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("num_image_writer_threads_per_camera") == 1, done.stderr[-3000:]
    assert "has no meaning here" in done.stderr

    by_episode = check_rows(root, stall_every=7)
    figures = json.loads(report.read_text())
    assert [e["status"] for e in figures["episodes"]] == ["saved", "saved"]
    for e, fig in enumerate(figures["episodes"]):
        rows = by_episode[e]
        assert fig["frames"] == len(rows) == fig["ticks"] - fig["late_ticks"]
        stalled = sum(r.tick % 7 == 6 for r in rows)
        assert stalled > 0
        assert fig["stale"] == {"observation.images.top": stalled, "observation.images.wrist": stalled}
        assert sum(fig["dropped"].values()) == 0
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["robot_type"] == "tickbot" and info["fps"] == 30 and info["total_episodes"] == 2
    assert info["features"]["observation.images.top"]["info"]["video.codec"] == "av1"
    assert verify(root).healthy, verify(root).findings
    lerobot_loads_every_row(root)


def test_rerecord_next_and_stop_from_the_keyboard(tmp_path: Path) -> None:
    """On a terminal, LeRobot's keys: r clears the open episode and records it again after the reset; n ends
    the episode early and saves it; q saves the open episode and ends the recording."""
    sources = id_videos(tmp_path / "videos")
    root, report = tmp_path / "ds", tmp_path / "report.json"
    term = Terminal(command(sources, root, episodes=3, seconds=2, reset=0.5, extra=(*H264, f"--report-json={report}")),
                    tmp_path)
    term.wait_for("Recording episode 0")
    time.sleep(0.8)
    term.press("r")
    term.wait_for("Re-record episode")
    term.wait_for("Recording episode 0", count=2)
    time.sleep(0.8)
    term.press("n")
    term.wait_for("Recording episode 1")
    time.sleep(0.7)
    term.press("q")
    assert term.finish() == 0, term.text()[-3000:]

    figures = json.loads(report.read_text())["episodes"]
    assert [(f["episode_index"], f["status"]) for f in figures] == [(None, "re-recorded"), (0, "saved"), (1, "saved")]
    by_episode = check_rows(root)
    assert sorted(by_episode) == [0, 1]
    assert 5 < len(by_episode[0]) == figures[1]["frames"] < 45  # ended early by n, kept
    assert 5 < len(by_episode[1]) == figures[2]["frames"] < 45  # stopped part way by q, kept
    # The kept episode 0 is the second attempt: its first tick comes after the discarded rows and the reset.
    assert by_episode[0][0].tick >= figures[0]["frames"]
    assert [ep["length"] for ep in episodes(root)] == [len(by_episode[0]), len(by_episode[1])]
    lerobot_loads_every_row(root)


def test_interrupted_then_repaired(tmp_path: Path) -> None:
    """SIGINT, then SIGKILL before the recording could finalize: `streamrec repair` keeps the episode
    that was saved, every row with its own frames, and LeRobot loads it."""
    sources = id_videos(tmp_path / "videos")
    root = tmp_path / "ds"
    proc = subprocess.Popen(command(sources, root, episodes=3, seconds=1.5, extra=H264), env=env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("episode 1/3: saved as episode 0"):
            break
    else:
        raise AssertionError("".join(lines))
    time.sleep(0.5)  # into episode 1
    interrupt(proc)
    assert (root / ".streamrec").is_dir(), "the kill landed after finalize; nothing left to repair"
    repaired = subprocess.run([str(lerobot_bin() / "streamrec"), "repair", str(root)], capture_output=True, text=True,
                              timeout=300)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert not (root / ".streamrec").exists()
    by_episode = check_rows(root)
    assert sorted(by_episode) == [0]
    assert verify(root).healthy, verify(root).findings
    lerobot_loads_every_row(root)


def test_resume_adds_episodes(tmp_path: Path) -> None:
    """--resume=true appends to the dataset the first run finalized (here through the PNG path, LeRobot's
    default); a robot whose features differ is refused."""
    sources = id_videos(tmp_path / "videos")
    root = tmp_path / "ds"
    first = run(command(sources, root, episodes=1, seconds=1, extra=H264), tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    # LeRobot's default, streaming_encoding=false: PNGs while recording, encoded at the save.
    png = tuple(a for a in H264 if "streaming_encoding" not in a)
    second = run(command(sources, root, episodes=1, seconds=1, extra=(*png, "--resume=true")), tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    by_episode = check_rows(root)
    assert sorted(by_episode) == [0, 1]
    other = run(command(sources, root, episodes=1, seconds=1, extra=(*H264, "--resume=true", "--robot.joints=4")),
                tmp_path)
    assert other.returncode == 2
    assert "observation.state" in other.stderr and "does not match" in other.stderr
    assert len(read_rows(root)) == sum(len(r) for r in by_episode.values())


def test_push_without_network_keeps_the_dataset(tmp_path: Path) -> None:
    """The push comes after finalize(); without a network it fails saying so, and the dataset stays whole."""
    sources = id_videos(tmp_path / "videos")
    root = tmp_path / "ds"
    cmd = [a for a in command(sources, root, episodes=1, seconds=1, extra=H264) if a != "--dataset.push_to_hub=false"]
    # Port 9 on loopback: nothing listens, so every request is refused at once.
    hub = {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_streamrec_tests"}
    done = subprocess.run(cmd, env={**env(tmp_path), **hub}, capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "to the Hub as streamrec-tests/tick_" in done.stderr
    assert "dataset on disk is complete and unchanged" in done.stderr
    check_rows(root)
    assert verify(root).healthy, verify(root).findings


def test_live_display_without_a_screen_saves_an_rrd(tmp_path: Path) -> None:
    """--display_data=true with no screen: streamrec's Rerun display saves <root>.rrd beside the dataset."""
    sources = id_videos(tmp_path / "videos")
    root = tmp_path / "ds"
    done = run(command(sources, root, episodes=1, seconds=1, extra=(*H264, "--display_data=true")), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = check_rows(root)[0]
    script = r"""
import json, sys
from rerun.chunk import RrdReader
counts = {}
for chunk in RrdReader(sys.argv[1]).stream():
    if not chunk.is_static:
        counts[chunk.entity_path] = counts.get(chunk.entity_path, 0) + chunk.num_rows
print(json.dumps(counts))
"""
    read = subprocess.run([str(lerobot_bin() / "python"), "-c", script, str(tmp_path / "ds.rrd")],
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr[-3000:]
    counts = json.loads(read.stdout.strip().splitlines()[-1])
    assert 0 < counts["/observation.state"] <= len(rows) and counts["/action"] == counts["/observation.state"]
    assert 0 < counts["/observation.images.top"] <= counts["/observation.state"]


@pytest.mark.parametrize(("flag", "message"), [
    ("--dataset.video=false", "video only"),
    ("--dataset.queue_full_policy=sometimes", "queue_full_policy"),
    ("--dataset.rgb_encoder.vcodec=nosuchcodec", "nosuchcodec"),
])
def test_bad_flags_exit_2_naming_them(tmp_path: Path, flag: str, message: str) -> None:
    sources = id_videos(tmp_path / "videos", frames=8)
    root = tmp_path / "ds"
    done = run(command(sources, root, episodes=1, seconds=1, extra=("--dataset.streaming_encoding=true", flag)),
               tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert message in done.stderr
    assert not root.exists()


def test_flags_match_lerobot_record(tmp_path: Path) -> None:
    """Every field of lerobot-record 0.6.1's RecordConfig and DatasetRecordConfig is a flag here, with its default."""
    script = r"""
import ast, dataclasses, importlib.util, json
from pathlib import Path
from lerobot.configs.dataset import DatasetRecordConfig
from streamrec.lerobot._config import DatasetSection, LeRobotRecordConfig
# The script itself cannot be imported beside PyAV >= 18 (see streamrec.lerobot._features): read its source.
tree = ast.parse(Path(importlib.util.find_spec("lerobot.scripts.lerobot_record").origin).read_text())
record = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "RecordConfig")
theirs_top = [s.target.id for s in record.body if isinstance(s, ast.AnnAssign)]
ours_top = [f.name for f in dataclasses.fields(LeRobotRecordConfig)]
defaults = {}
for f in dataclasses.fields(DatasetRecordConfig):
    if f.name in ("rgb_encoder", "depth_encoder"):
        continue
    defaults[f.name] = f.default
ours = {f.name: f.default for f in dataclasses.fields(DatasetSection)}
print(json.dumps({"missing_top": [n for n in theirs_top if n not in ours_top],
                  "missing": [n for n in defaults if n not in ours],
                  "default_differs": [n for n in defaults if n in ours and ours[n] != defaults[n]]}))
"""
    done = subprocess.run([str(lerobot_bin() / "python"), "-c", script], capture_output=True, text=True, timeout=120,
                          env=env(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"missing_top": [], "missing": [], "default_differs": []}


def test_streamrec_itself_never_imports_lerobot(tmp_path: Path) -> None:
    """The core, the command line and streamrec.lerobot's writer load without LeRobot or torch."""
    script = r"""
import sys
import streamrec, streamrec.lerobot, streamrec.cli.__main__
from streamrec.lerobot import LeRobotDataset, VideoEncodingManager
try:
    streamrec.cli.__main__.main(["info", "--help"])
except SystemExit:
    pass
print(sorted(m for m in ("lerobot", "torch", "draccus") if m in sys.modules))
"""
    done = subprocess.run([str(lerobot_bin() / "python"), "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_processor_pipelines_of_your_own(tmp_path: Path) -> None:
    """streamrec.lerobot.record() takes LeRobot processor pipelines as lerobot-record's record() does: the
    teleoperator's action goes through its pipeline before it is sent and recorded, and the observation
    pipeline decides the state's features (here it drops `tick`)."""
    sources = id_videos(tmp_path / "videos")
    root = tmp_path / "ds"
    script = r"""
import sys
import lerobot_robot_tickbot, lerobot_teleoperator_tickleader
from lerobot.cameras.opencv import OpenCVCameraConfig
from lerobot.configs import PipelineFeatureType
from lerobot.processor import RobotProcessorPipeline
from lerobot.processor.converters import (observation_to_transition, robot_action_observation_to_transition,
                                          transition_to_observation, transition_to_robot_action)
from lerobot.processor.pipeline import ObservationProcessorStep, RobotActionProcessorStep
from streamrec.lerobot import DatasetSection, LeRobotRecordConfig, record

class Negate(RobotActionProcessorStep):
    def action(self, action):
        return {**action, "j0.pos": -action["j0.pos"]}
    def transform_features(self, features):
        return features

class DropTick(ObservationProcessorStep):
    def observation(self, observation):
        return {k: v for k, v in observation.items() if k != "tick"}
    def transform_features(self, features):
        return {kind: {k: v for k, v in f.items() if not (kind is PipelineFeatureType.OBSERVATION and k == "tick")}
                for kind, f in features.items()}

videos, root = sys.argv[1:3], sys.argv[3]
cams = {name: OpenCVCameraConfig(index_or_path=path, width=320, height=240, fps=30)
        for name, path in zip(("top", "wrist"), videos)}
config = LeRobotRecordConfig(
    robot=lerobot_robot_tickbot.TickBotConfig(cameras=cams), teleop=lerobot_teleoperator_tickleader.TickLeaderConfig(),
    dataset=DatasetSection(repo_id="me/piped", root=root, num_episodes=1, episode_time_s=1, reset_time_s=0,
                           single_task="pipelines", push_to_hub=False, streaming_encoding=True,
                           rgb_encoder={"vcodec": "h264", "preset": "ultrafast"}),
    play_sounds=False, report_json=root + ".json")
action_steps = RobotProcessorPipeline(steps=[Negate()], to_transition=robot_action_observation_to_transition,
                                      to_output=transition_to_robot_action)
observation_steps = RobotProcessorPipeline(steps=[DropTick()], to_transition=observation_to_transition,
                                           to_output=transition_to_observation)
sys.exit(record(config, teleop_action_processor=action_steps, robot_observation_processor=observation_steps))
"""
    done = subprocess.run([str(lerobot_bin() / "python"), "-c", script, *map(str, sources.videos.values()), str(root)],
                          env=env(tmp_path), capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((root / "meta" / "info.json").read_text())
    names = info["features"]["observation.state"]["names"]
    assert "tick" not in names and names[:2] == ["j0.pos", "j1.pos"]
    import pyarrow.parquet as pq

    table = pq.read_table(next(root.glob("data/chunk-*/file-*.parquet")))
    state = table.column("observation.state").to_pylist()
    action = table.column("action").to_pylist()
    figures = json.loads((tmp_path / "ds.json").read_text())["episodes"][0]
    assert len(state) == figures["frames"] == figures["ticks"] - figures["late_ticks"] > 0
    for r, (s, a) in enumerate(zip(state, action)):
        tick = int(s[names.index("top.frame")]) - 1  # each observation brings the next frame; frame 0 at connect
        assert a[0] == -tick and a[1] == 1000 + tick, (r, a)  # recorded as it left the teleoperator's pipeline
        if r:
            assert s[:6] == action[r - 1], (r, s)  # and sent so: the robot's joints follow it
