"""The page in a real browser (Debian's headless Chromium, driven by Playwright).

Frames are read back from the `<video>` elements themselves: drawn onto a canvas, their pixels
fetched and decoded with tests/utils.read_id, so "episode k shows episode k's frames" is checked
on what the browser actually displays.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers.frames import read_id
from streamrec import verify

from .conftest import DEPTH, EPISODES_FILE, LEROBOT, TOP, WRIST, decoded_ids, ident

pytestmark = pytest.mark.usefixtures("browser")

# Pixels of camera i's current frame as [width, height, rgb...]; after two animation frames, so
# that the frame the last seek asked for is the one on screen.
GRAB = """async (i) => {
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const v = streamrecView.cams[i].video;
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data;
  const out = new Array(c.width * c.height * 3);
  for (let p = 0, q = 0; p < d.length; p += 4) { out[q++] = d[p]; out[q++] = d[p + 1]; out[q++] = d[p + 2]; }
  return [c.width, c.height, out];
}"""


def grab(page, camera: int) -> np.ndarray:
    w, h, data = page.evaluate(GRAB, camera)
    return np.asarray(data, np.uint8).reshape(h, w, 3)


def show(page, position: int, frame: int) -> None:
    """Go to episode `position`, frame `frame` through the page's own address (#e=..&f=..)."""
    page.evaluate(f"location.hash = 'e={position}&f={frame}'")
    page.wait_for_function(f"""() => {{ const v = window.streamrecView;
        return v && v.episode && v.episode.position === {position} && v.frame === {frame} && v.settled(); }}""",
                           timeout=30000)


def open_page(page, server, position: int = 0, frame: int = 0) -> None:
    page.goto(f"{server.url}#e={position}&f={frame}")
    page.wait_for_function(f"() => window.streamrecView && streamrecView.episode && "
                           f"streamrecView.episode.position === {position} && streamrecView.settled()", timeout=30000)


def test_lists_every_episode_plots_and_plays(serve, ids_dataset, page):
    server = serve(ids_dataset, run_verify=False)
    responses = []
    page.on("response", lambda r: responses.append((r.url, r.status)))
    open_page(page, server)
    rows = page.eval_on_selector_all("#episodes tbody tr", "rs => rs.map(r => [...r.cells].slice(0, 4).map(c => "
                                     "c.textContent))")
    assert rows == [["0", "40 1.3 s", "task 0", "0"], ["1", "25 0.8 s", "task 1", "0"],
                    ["2", "60 2.0 s", "task 2", "0"], ["3", "33 1.1 s", "task 0", "0"]]
    # Plots: one per series, one trace per dimension, with the cursor line.
    page.wait_for_function("() => streamrecView.plots.length === 2", timeout=30000)
    plots = page.evaluate("streamrecView.plots.map(p => [p.dataset.feature, p.data.length, p.data[0].y.length, "
                          "p.layout.shapes.length])")
    assert plots == [["observation.state", 3, 40, 1], ["action", 2, 40, 1]]
    assert page.evaluate("streamrecView.plots[0].data[0].y.slice(0, 5)") == [0, 1, 2, 3, 4]

    # Both cameras play, and stay together.
    start = page.evaluate("streamrecView.cams.map(c => c.video.currentTime)")
    page.evaluate("streamrecView.play()")
    page.wait_for_function("() => streamrecView.frame >= 20", timeout=30000)
    times = page.evaluate("streamrecView.cams.map(c => c.video.currentTime - c.from)")
    assert all(t > s + 0.3 for t, s in zip(times, start)), (start, times)
    assert abs(times[0] - times[1]) < 0.1, times
    # The plot cursor follows the frame.
    page.evaluate("streamrecView.pause()")
    frame = page.evaluate("streamrecView.frame")
    page.wait_for_function(f"() => streamrecView.plots[0].layout.shapes[0].x0 === {frame}")
    # The browser fetched the MP4 with Range requests.
    assert any("/files/videos/" in url and status == 206 for url, status in responses), responses
    assert page.errors == []


def test_episode_k_shows_episode_k_frames(serve, ids_dataset, page):
    server = serve(ids_dataset, run_verify=False)
    open_page(page, server)
    lengths = [40, 25, 60, 33]
    for position in (1, 3, 0, 2):
        for frame in (0, 7, lengths[position] - 1):
            show(page, position, frame)
            for camera in (0, 1):
                assert read_id(grab(page, camera)) == ident(position, frame), (position, frame, camera)
    # Choosing an episode in the list, then stepping with the keyboard.
    page.click("#episodes tbody tr:nth-child(2)")
    page.wait_for_function("() => streamrecView.episode.position === 1 && streamrecView.frame === 0 && "
                           "streamrecView.settled()")
    assert page.inner_text("#episode-title").startswith("Episode 1 · 25 frames")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => streamrecView.frame === 2 && streamrecView.settled()")
    assert read_id(grab(page, 0)) == ident(1, 2)
    assert read_id(grab(page, 1)) == ident(1, 2)


def test_drop_positions_are_marked(serve, slots_dataset, page):
    server = serve(slots_dataset, run_verify=False)
    rows = pq.read_table(slots_dataset / EPISODES_FILE).to_pylist()
    open_page(page, server)
    for position in (0, 1):
        show(page, position, 0)
        marks = page.eval_on_selector_all("#timeline .mark.drop", "ms => ms.map(m => +m.dataset.frame)")
        assert marks == rows[position][f"videos/{TOP}/dropped_slots"]
        drops = page.inner_text(f"#episodes tbody tr:nth-child({position + 1}) td:nth-child(4)")
        assert drops == str(rows[position][f"videos/{TOP}/dropped_frames"])
    show(page, 0, 0)
    adaptations = page.eval_on_selector_all("#timeline .mark.adaptation",
                                            "ms => ms.map(m => [+m.dataset.frame, m.title])")
    assert adaptations == [[5, "top at frame 5: preset veryslow -> slow"],
                           [17, "top at frame 17: preset slow -> veryfast"]]
    # Clicking a drop mark goes to that row, which shows what the file holds there: the frame kept before it.
    slot = rows[0][f"videos/{TOP}/dropped_slots"][-1]
    page.click(f'#timeline .mark.drop[data-frame="{slot}"]', force=True)
    page.wait_for_function(f"() => streamrecView.frame === {slot} && streamrecView.settled()")
    shown = read_id(grab(page, 0))
    assert shown == decoded_ids(slots_dataset, 0)[slot] and shown != ident(0, slot)


def test_drop_counts_and_findings(serve, counts_dataset, page):
    server = serve(counts_dataset)
    rows = pq.read_table(counts_dataset / EPISODES_FILE).to_pylist()
    report = verify(counts_dataset)
    open_page(page, server)
    # Without positions the count is shown, and said to be a count.
    legend = page.inner_text("#timeline-legend")
    assert f"top: {rows[0][f'videos/{TOP}/dropped_frames']} frame(s) dropped (positions not recorded)" in legend
    assert page.eval_on_selector_all("#timeline .mark.drop", "ms => ms.length") == 0
    # verify's findings arrive from the background check, each linked to its episode.
    page.wait_for_function("() => streamrecView.health !== null", timeout=120000)
    items = page.eval_on_selector_all("#findings-list li", "ls => ls.map(l => [l.querySelector('code').textContent, "
                                      "l.dataset.episode])")
    assert items == [[f.code, "" if f.episode is None else str(f.episode)] for f in report.findings]
    # Each episode's verify column: the worst severity of its findings (info counts as ok).
    statuses = page.eval_on_selector_all("#episodes tbody td.status", "cs => cs.map(c => c.textContent)")
    order = ["ok", "warning", "error"]
    expected = ["ok"] * 2
    for f in report.findings:
        if f.episode is not None and f.severity.value in order:
            expected[f.episode] = max(expected[f.episode], f.severity.value, key=order.index)
    assert statuses == expected
    page.click('#findings-list li[data-episode="1"] a >> nth=0')
    page.wait_for_function("() => streamrecView.episode.index === 1 && streamrecView.frame === 0 && "
                           "streamrecView.settled()")
    here = page.eval_on_selector_all("#findings-list li.here", "ls => ls.length")
    assert here == sum(f.episode == 1 for f in report.findings) > 0
    assert page.eval_on_selector_all("#timeline .mark.finding", "ms => ms.length") == 1


def test_lerobot_dataset(serve, page):
    server = serve(LEROBOT, run_verify=False)
    open_page(page, server)
    assert page.eval_on_selector_all("#episodes tbody tr", "rs => rs.length") == 2
    assert page.inner_text("#timeline-legend") == "this dataset does not record dropped frames"
    # LeRobot's AV1: frame k of the dataset shows identity k.
    for position, frame, k in ((0, 4, 4), (1, 0, 10), (1, 11, 21)):
        show(page, position, frame)
        assert read_id(grab(page, 0)) == k
    page.wait_for_function("() => streamrecView.plots.length === 2", timeout=30000)


def test_hevc_plays_through_a_preview(serve, hevc_dataset, page):
    server = serve(hevc_dataset, run_verify=False)
    open_page(page, server, 1, 0)
    assert "transcoded to H.264" in page.inner_text("#cameras figcaption")
    for frame in (0, 9, 14):
        show(page, 1, frame)
        assert read_id(grab(page, 0)) == ident(1, frame)


def test_depth_is_a_colour_map(serve, depth_dataset, page):
    server = serve(depth_dataset, run_verify=False)
    open_page(page, server, 0, 5)
    keys = page.evaluate("streamrecView.cams.map(c => c.key)")
    assert keys == [TOP, DEPTH]
    assert read_id(grab(page, 0)) == ident(0, 5)
    rgb = grab(page, 1).astype(int)
    h, w = rgb.shape[:2]
    near, far = rgb[h // 2:, : w // 4].reshape(-1, 3).mean(0), rgb[h // 2:, -w // 4:].reshape(-1, 3).mean(0)
    assert near[0] > near[2] + 60 and far[2] > far[0] + 60, (near, far)
    assert page.eval_on_selector_all("figure.camera .depth-legend", "ls => ls.length") == 1


def test_screenshot(serve, ids_dataset, page, tmp_path):
    server = serve(ids_dataset)
    open_page(page, server, 2, 30)
    page.wait_for_function("() => streamrecView.plots.length === 2 && streamrecView.health !== null", timeout=120000)
    path = tmp_path / "view.png"
    page.screenshot(path=str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert WRIST in page.evaluate("streamrecView.cams.map(c => c.key)")


def test_a_stream_info_json_misnames_falls_back_to_a_preview(serve, hevc_dataset, page, tmp_path):
    # info.json says H.264, the file is HEVC: the browser fails, the page asks for a preview of what
    # the file really holds.
    root = tmp_path / "misnamed"
    shutil.copytree(hevc_dataset, root)
    info = json.loads((root / "meta/info.json").read_text())
    info["features"][TOP]["info"].update({"video.codec": "h264", "video.pix_fmt": "yuv420p"})
    (root / "meta/info.json").write_text(json.dumps(info))
    server = serve(root, run_verify=False)
    open_page(page, server, 0, 3)
    assert "cannot play this file" in page.inner_text("#cameras figcaption")
    assert read_id(grab(page, 0)) == ident(0, 3)
