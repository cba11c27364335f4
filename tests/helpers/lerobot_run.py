"""Running `streamrec lerobot-record` in the Python 3.12 environment LeRobot 0.6 needs, and reading back
what the test robot (`lerobot_robot_tickbot`) and teleoperator (`lerobot_teleoperator_tickleader`) wrote.

The tests run under the suite's own Python; LeRobot runs in `.venv312` (built by `make test`), or the
environment STREAMREC_LEROBOT_PYTHON names, as a real command in its own process.
"""

from __future__ import annotations

import glob
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from .frames import REPO, episodes, frames_of_episode, read_id, write_id_video

# shared/ sits beside the clone (CI, the main checkout); helpers' worktrees reach it at /work/shared.
LOAD_CHECK = next((p for p in (REPO.parent / "shared" / "tools" / "lerobot-load-check",
                               Path("/work/shared/tools/lerobot-load-check")) if p.exists()),
                  REPO.parent / "shared" / "tools" / "lerobot-load-check")
SIZE = (240, 320)  # height, width of the test cameras
FPS = 30
CAMERAS = ("top", "wrist")


def python312_exists() -> bool:
    """Whether this machine has a Python >= 3.12 to build LeRobot's environment with."""
    if sys.version_info >= (3, 12):
        return True
    candidates = [shutil.which("python3.12"), shutil.which("python3.13")]
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("pyenv") else ""
    if root:
        candidates += glob.glob(f"{root}/versions/3.1[2-9]*/bin/python3.1[2-9]")
    for c in filter(None, candidates):
        ok = subprocess.run([c, "-c", "import sys; assert sys.version_info >= (3, 12)"], capture_output=True)
        if ok.returncode == 0:
            return True
    return False


def lerobot_bin() -> Path:
    """The bin/ folder of the LeRobot environment; skips only where no Python >= 3.12 exists."""
    given = os.environ.get("STREAMREC_LEROBOT_PYTHON")
    python = Path(given) if given else REPO / ".venv312" / "bin" / "python"
    if python.is_file() and (python.parent / "streamrec").is_file():
        return python.parent
    if not python312_exists():
        pytest.skip("no Python >= 3.12 on this machine: LeRobot 0.6 (and so streamrec lerobot-record) needs it")
    pytest.fail(f"{python} with streamrec and LeRobot is missing: `make test` builds it (make lerobot-env), or set "
                "STREAMREC_LEROBOT_PYTHON to a Python 3.12 environment holding streamrec[lerobot] and the test plugins")


@dataclass
class Sources:
    videos: dict[str, Path]

    def camera_flag(self) -> str:
        h, w = SIZE
        cams = ", ".join(f"{name}: {{type: opencv, index_or_path: {path}, width: {w}, height: {h}, fps: {FPS}}}"
                         for name, path in self.videos.items())
        return f"--robot.cameras={{{cams}}}"


def id_videos(folder: Path, frames: int = 400) -> Sources:
    """One video per camera whose frame k shows k (the robot reads it back from the pixels)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Sources({name: write_id_video(folder / f"{name}.mp4", frames=frames, height=SIZE[0], width=SIZE[1],
                                         fps=FPS) for name in CAMERAS})


def env(tmp: Path) -> dict[str, str]:
    """No display, LeRobot's caches in the test's folder, the Hub unreachable."""
    out = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    # TMPDIR: the robot's pipes, even those of a killed run, go with the test's folder.
    out.update(HF_HOME=str(tmp / "hf"), HF_LEROBOT_HOME=str(tmp / "hf" / "lerobot"), HF_HUB_OFFLINE="1",
               XDG_CACHE_HOME=str(tmp / "cache"), PYTHONUNBUFFERED="1", TMPDIR=str(tmp))
    return out


def command(sources: Sources, root: Path, *, episodes: int, seconds: float, reset: float = 0.5,
            extra: tuple[str, ...] = ()) -> list[str]:
    return [str(lerobot_bin() / "streamrec"), "lerobot-record", "--robot.type=tickbot", sources.camera_flag(),
            "--teleop.type=tickleader", "--dataset.repo_id=streamrec-tests/tick", f"--dataset.root={root}",
            f"--dataset.fps={FPS}", f"--dataset.num_episodes={episodes}", f"--dataset.episode_time_s={seconds}",
            f"--dataset.reset_time_s={reset}", "--dataset.single_task=count the ticks",
            "--dataset.push_to_hub=false", "--play_sounds=false", *extra]


H264 = ("--dataset.streaming_encoding=true", "--dataset.camera_encoder.vcodec=h264",
        "--dataset.camera_encoder.preset=ultrafast", "--dataset.camera_encoder.crf=18")
"""Cheap on the CPU (the machine is shared), and streamrec's documented flag spelling."""


def run(cmd: list[str], tmp: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env(tmp), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


class Terminal:
    """The command on a pseudo-terminal, as a person runs it: LeRobot's keyboard listener reads keys
    from it (n / r / q) and the status display is live."""

    def __init__(self, cmd: list[str], tmp: Path) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(cmd, env={**env(tmp), "TERM": "xterm", "COLUMNS": "120"}, stdin=slave,
                                     stdout=slave, stderr=slave, start_new_session=True, close_fds=True)
        os.close(slave)
        self.fd = master
        self.output = b""
        self.closed = False

    def _read(self, timeout: float) -> bool:
        """Read what the command printed within `timeout`; False once its side of the terminal is closed."""
        if self.closed:
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: every process holding the terminal has ended
            data = b""
        if not data:
            self.closed = True
            return False
        self.output += data
        return True

    def wait_for(self, text: str, count: int = 1, timeout: float = 90) -> None:
        """Until `text` has appeared `count` times in the output."""
        end = time.monotonic() + timeout
        while self.output.count(text.encode()) < count:
            if time.monotonic() > end or not self._read(0.1):
                raise AssertionError(f"{text!r} (x{count}) never came; output:\n{self.text()[-3000:]}")

    def press(self, key: str) -> None:
        os.write(self.fd, key.encode())

    def finish(self, timeout: float = 120) -> int:
        end = time.monotonic() + timeout
        while self._read(0.1) and time.monotonic() < end:
            pass
        try:
            code = self.proc.wait(timeout=max(1.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"did not end in {timeout} s; output:\n{self.text()[-3000:]}") from None
        finally:
            os.close(self.fd)
        return code

    def text(self) -> str:
        return self.output.decode(errors="replace")


@dataclass
class Row:
    episode: int
    tick: int
    frames: dict[str, int]
    """Per camera: the number the robot read from the image it handed out."""
    joints: np.ndarray
    action: np.ndarray


def read_rows(root: Path) -> list[Row]:
    """Every row of the dataset, in order, with the named entries of its state."""
    info = json.loads((root / "meta" / "info.json").read_text())
    names = info["features"]["observation.state"]["names"]
    table = pa.concat_tables([pq.read_table(p) for p in sorted(root.glob("data/chunk-*/file-*.parquet"))])
    state = np.asarray(table.column("observation.state").to_pylist(), np.float64)
    action = np.asarray(table.column("action").to_pylist(), np.float64)
    joints = [i for i, n in enumerate(names) if n.startswith("j")]
    return [Row(int(e), int(s[names.index("tick")]), {c: int(s[names.index(f"{c}.frame")]) for c in CAMERAS},
                s[joints], a) for e, s, a in zip(table.column("episode_index").to_pylist(), state, action)]


def check_rows(root: Path, stall_every: int = 0) -> dict[int, list[Row]]:
    """The checks every recording must pass; returns the rows by episode.

    - Each row's stored camera frames show the numbers its state says the robot handed out: image and
      state come from one observation, and rows and video frames stay 1:1.
    - Consecutive rows are consecutive robot calls (the tick grows by 1), and each new observation
      brings each camera's next frame, except where the robot stalled the cameras.
    - The action is the teleoperator's call of the same tick, and the joints the previous row's action.
    """
    rows = read_rows(root)
    by_episode: dict[int, list[Row]] = {}
    for r in rows:
        by_episode.setdefault(r.episode, []).append(r)
    for ep in episodes(root):
        e = ep["episode_index"]
        ep_rows = by_episode[e]
        assert len(ep_rows) == ep["length"]
        for cam in CAMERAS:
            shown = [read_id(f) for f in frames_of_episode(root, ep, f"observation.images.{cam}", FPS)]
            said = [r.frames[cam] for r in ep_rows]
            assert shown == said, f"episode {e} {cam}: video frames show {shown}, the rows' states say {said}"
        for prev, row in zip(ep_rows, ep_rows[1:]):
            assert row.tick == prev.tick + 1, f"episode {e}: tick {prev.tick} then {row.tick}"
            stalled = stall_every and row.tick % stall_every == stall_every - 1
            for cam in CAMERAS:
                step = row.frames[cam] - prev.frames[cam]
                assert step == (0 if stalled else 1), f"episode {e} tick {row.tick} {cam}: frame {prev.frames[cam]} " \
                                                      f"then {row.frames[cam]}"
            assert np.array_equal(row.joints, prev.action), f"episode {e} tick {row.tick}: joints {row.joints} are " \
                                                             f"not the previous action {prev.action}"
        for row in ep_rows:
            expected = np.array([1000.0 * i + row.tick for i in range(len(row.action))])
            assert np.array_equal(row.action, expected), f"episode {e} tick {row.tick}: action {row.action}"
    return by_episode


def lerobot_loads_every_row(root: Path) -> None:
    """LeRobot 0.6.1's own LeRobotDataset loads every row with the frame at its timestamp."""
    if not LOAD_CHECK.exists():
        pytest.skip(f"{LOAD_CHECK} is absent (a clone without /work/shared): LeRobot's own loader not run")
    done = subprocess.run([str(LOAD_CHECK), str(root), "--all"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"LeRobot's loader: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    assert json.loads(done.stdout[done.stdout.index("{"):])["ok"]


def interrupt(proc: subprocess.Popen) -> None:
    """SIGINT, then SIGKILL before the recording can finish stopping."""
    proc.send_signal(signal.SIGINT)
    proc.kill()
    proc.wait(timeout=30)
