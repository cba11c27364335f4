"""Datasets, a server and a real browser for the `streamrec view` tests.

Every dataset is recorded through the public API with frames that show their own identity
(tests/utils.id_frame): frame i of episode e shows `ident(e, i)`, so a test can read back which
frame a video element (or a preview) shows. Datasets are recorded once per session.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from helpers.frames import REPO, id_frame, read_id
from streamrec import DatasetRecorder, EncoderConfig
from streamrec.view import make_app

FPS = 30
TOP, WRIST, DEPTH = "observation.images.top", "observation.images.wrist", "observation.images.depth"
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"
LEROBOT = REPO / "tests" / "data" / "lerobot_v3"


def ident(episode: int, row: int) -> int:
    return episode * 100 + row


def record(root: Path, lengths: list[int], *, height: int = 96, width: int = 128, wrist: bool = True,
           encoder: EncoderConfig | None = None, **kwargs) -> Path:
    """Episodes of the given lengths; state = (row, episode, sin), action = (-row, episode)."""
    features = {TOP: {"dtype": "video", "shape": [height, width, 3]},
                "observation.state": {"dtype": "float32", "shape": [3], "names": ["row", "episode", "sine"]},
                "action": {"dtype": "float32", "shape": [2]}}
    if wrist:
        features[WRIST] = {"dtype": "video", "shape": [height, width, 3]}
    frames = {}
    with DatasetRecorder.create(root, FPS, features, camera_encoder=encoder or EncoderConfig(vcodec="h264",
                                preset="ultrafast"), **kwargs) as rec:
        for e, length in enumerate(lengths):
            for i in range(length):
                k = ident(e, i)
                if k not in frames:
                    frames[k] = id_frame(k, height, width)
                row = {TOP: frames[k], "observation.state": np.array([i, e, np.sin(i / 4)], np.float32),
                       "action": np.array([-i, e], np.float32), "task": f"task {e % 3}"}
                if wrist:
                    row[WRIST] = id_frame(k, height, width, tint=60)
                rec.add_frame(row)
            rec.save_episode()
    return root


def decoded_ids(root: Path, episode: int, key: str = TOP) -> list[int]:
    """The identity the loader's frame for each row of `episode` shows (decoded with PyAV)."""
    row = pq.read_table(root / EPISODES_FILE).to_pylist()[episode]
    chunk, file = row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"]
    path = root / f"videos/{key}/chunk-{chunk:03d}/file-{file:03d}.mp4"
    start = Fraction(row[f"videos/{key}/from_timestamp"]).limit_denominator(FPS * 1000)
    by_time = {}
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            by_time[f.pts * s.time_base] = read_id(f.to_ndarray(format="rgb24"))
    return [by_time[start + Fraction(i, FPS)] for i in range(row["length"])]


def set_episode_column(root: Path, name: str, values: list, type_: pa.DataType) -> None:
    path = root / EPISODES_FILE
    table = pq.read_table(path)
    if name in table.column_names:
        table = table.drop_columns([name])
    pq.write_table(table.append_column(name, pa.array(values, type_)), path)


def add_depth_camera(root: Path, height: int = 96, width: int = 128) -> Path:
    """Give a recorded dataset a depth camera: 12-bit grey HEVC, the layout a depth recorder writes.

    Row i of episode e: the left half is near (400 + 10 i mm), the right half far (3000 mm), the
    top eighth has no reading (0).
    """
    rows = pq.read_table(root / EPISODES_FILE).to_pylist()
    rel = f"videos/{DEPTH}/chunk-000/file-000.mp4"
    (root / rel).parent.mkdir(parents=True)
    starts, t = [], 0
    with av.open(str(root / rel), "w") as c:
        s = c.add_stream("libx265", rate=FPS)
        s.width, s.height, s.pix_fmt = width, height, "gray12le"
        s.options = {"x265-params": "log-level=error:bframes=0:lossless=1"}
        for ep in rows:
            starts.append(t)
            for i in range(ep["length"]):
                depth = np.full((height, width), 3000, np.uint16)
                depth[:, : width // 2] = 400 + 10 * i
                depth[: height // 8] = 0
                frame = av.VideoFrame.from_ndarray(depth, format="gray12le")
                frame.pts = t
                for packet in s.encode(frame):
                    c.mux(packet)
                t += 1
        c.mux(s.encode())
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    info["features"][DEPTH] = {"dtype": "video", "shape": [height, width, 1], "names": ["height", "width", "channels"],
                               "info": {"video.codec": "hevc", "video.pix_fmt": "gray12le", "video.fps": FPS,
                                        "video.height": height, "video.width": width, "is_depth_map": True}}
    info_path.write_text(json.dumps(info, indent=2))
    for col, values, type_ in ((f"videos/{DEPTH}/chunk_index", [0] * len(rows), pa.int64()),
                               (f"videos/{DEPTH}/file_index", [0] * len(rows), pa.int64()),
                               (f"videos/{DEPTH}/from_timestamp", [s0 / FPS for s0 in starts], pa.float64()),
                               (f"videos/{DEPTH}/to_timestamp",
                                [(s0 + ep["length"]) / FPS for s0, ep in zip(starts, rows)], pa.float64())):
        set_episode_column(root, col, values, type_)
    return root


# -- datasets -------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def ids_dataset(tmp_path_factory) -> Path:
    """Four episodes back to back in one MP4 per camera, no drops."""
    return record(tmp_path_factory.mktemp("view") / "ids", [40, 25, 60, 33], queue_full_policy="block")


@pytest.fixture(scope="session")
def drops_dataset(tmp_path_factory) -> Path:
    """Recorded with real drops: a slow encoder behind a one-frame queue, the default drop policy."""
    root = record(tmp_path_factory.mktemp("view") / "drops", [30, 30], height=240, width=320, wrist=False,
                  encoder=EncoderConfig(vcodec="h264", preset="veryslow"), encoder_queue_maxsize=1,
                  adapt_on_overload=False)
    dropped = pq.read_table(root / EPISODES_FILE)[f"videos/{TOP}/dropped_frames"].to_pylist()
    assert sum(dropped) > 0, "the recording dropped no frame; the drop tests need some"
    return root


@pytest.fixture(scope="session")
def slots_dataset(drops_dataset, tmp_path_factory) -> Path:
    """drops_dataset with adaptation steps added by hand (their text is made up; adaptation was off).

    The drop positions are the recorder's own, checked here against the truth: the rows whose
    decoded frame is not the row's own identity.
    """
    root = tmp_path_factory.mktemp("view") / "slots"
    shutil.copytree(drops_dataset, root)
    episodes = pq.read_table(root / EPISODES_FILE).to_pylist()
    truth = [[i for i, k in enumerate(decoded_ids(root, e)) if k != ident(e, i)] for e in range(len(episodes))]
    assert [ep[f"videos/{TOP}/dropped_slots"] for ep in episodes] == truth
    adaptations = [["5:preset veryslow -> slow", "17:preset slow -> veryfast"], []]
    set_episode_column(root, f"videos/{TOP}/adaptations", adaptations, pa.list_(pa.string()))
    return root


@pytest.fixture(scope="session")
def counts_dataset(drops_dataset, tmp_path_factory) -> Path:
    """drops_dataset as a streamrec before 2026-12 wrote it: drop counts, no positions, no adaptations."""
    root = tmp_path_factory.mktemp("view") / "counts"
    shutil.copytree(drops_dataset, root)
    table = pq.read_table(root / EPISODES_FILE)
    pq.write_table(table.drop_columns([f"videos/{TOP}/dropped_slots", f"videos/{TOP}/adaptations"]),
                   root / EPISODES_FILE)
    return root


@pytest.fixture(scope="session")
def hevc_dataset(tmp_path_factory) -> Path:
    return record(tmp_path_factory.mktemp("view") / "hevc", [20, 15], wrist=False,
                  encoder=EncoderConfig(vcodec="hevc", preset="ultrafast"), queue_full_policy="block")


@pytest.fixture(scope="session")
def depth_dataset(tmp_path_factory) -> Path:
    root = record(tmp_path_factory.mktemp("view") / "depth", [20, 15], wrist=False, queue_full_policy="block")
    return add_depth_camera(root)


# -- a server in this process ---------------------------------------------------------------------------

class Server:
    """make_app() served on 127.0.0.1 (a free port) by a thread with its own event loop (the
    browser driver runs an event loop of its own in the test's thread)."""

    def __init__(self, root: Path, cache_dir: Path, *, run_verify: bool = True,
                 allowed_hosts: frozenset[str] | None = frozenset({"127.0.0.1", "localhost"})) -> None:
        self.app = make_app(root, cache_dir=cache_dir, run_verify=run_verify, allowed_hosts=allowed_hosts)
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(self.app, access_log=None)
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self.runner.setup())
                self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", 0).start())
            except BaseException as e:  # noqa: BLE001 - handed to the test's thread
                failure.append(e)
                started.set()
                return
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        started.wait(30)
        if failure:
            raise failure[0]
        self.port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def serve(tmp_path) -> Iterator:
    """serve(root, **kwargs) -> Server; each is closed after the test. Previews and verify's report
    go to this test's own cache folder."""
    servers = []

    def start(root: Path, **kwargs) -> Server:
        kwargs.setdefault("cache_dir", tmp_path / "cache")
        servers.append(Server(root, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


# -- a real browser -------------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic", "--autoplay-policy=no-user-gesture-required"]


def chromium_path() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    return found or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        if os.environ.get("CI") or shutil.which("apt-get"):
            pytest.fail("no chromium binary: install Debian's with `apt-get install chromium` (.ci/run does)")
        pytest.skip("no chromium here, and this is not a Debian-like system where .ci/run could install it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()
