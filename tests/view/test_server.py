"""The view server over HTTP: what it serves, Range requests, and everything it must refuse."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
from pathlib import Path

import av
import pytest

from helpers.frames import read_id
from streamrec import DatasetError, verify
from streamrec.view import make_app

from .conftest import DEPTH, FPS, LEROBOT, TOP, ident

VIDEO = f"videos/{TOP}/chunk-000/file-000.mp4"


def request(server, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """Send `path` exactly as given (no client-side normalisation of `..` or %-escapes)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", (headers or {}).pop("Host", f"127.0.0.1:{server.port}"))
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def get_json(server, path: str):
    status, _, body = request(server, path)
    assert status == 200, (path, status, body[:200])
    return json.loads(body)


def test_page_embeds_every_episode(serve, ids_dataset):
    server = serve(ids_dataset, run_verify=False)
    status, headers, body = request(server, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in headers["content-security-policy"]
    page = body.decode()
    tag = '<script id="dataset" type="application/json">'
    start = page.index(tag) + len(tag)
    summary = json.loads(page[start:page.index("</script>", start)])
    assert summary == get_json(server, "/api/dataset")
    assert summary["episodes"]["index"] == [0, 1, 2, 3]
    assert summary["episodes"]["length"] == [40, 25, 60, 33]
    assert summary["episodes"]["tasks"] == ["task 0", "task 1", "task 2", "task 0"]
    assert summary["episodes"]["dropped"] == [0, 0, 0, 0]
    for asset in ("app.js", "app.css", "plotly.min.js"):
        status, _, body = request(server, f"/static/{asset}")
        assert status == 200 and len(body) > 1000, asset


def test_episode_document(serve, ids_dataset):
    server = serve(ids_dataset, run_verify=False)
    ep = get_json(server, "/api/episode/2")
    assert (ep["index"], ep["length"], ep["tasks"]) == (2, 60, ["task 2"])
    top = ep["cameras"][0]
    assert top["src"] == "/files/" + VIDEO
    assert round(top["from"] * FPS) == 65 and round(top["to"] * FPS) == 125
    assert (top["codec"], top["pix_fmt"], top["preview"]) == ("h264", "yuv420p", None)
    state = ep["series"][0]
    assert state["name"] == "observation.state" and state["values"][0] == list(range(60))


def test_range_requests_answer_206(serve, ids_dataset):
    server = serve(ids_dataset, run_verify=False)
    whole = (ids_dataset / VIDEO).read_bytes()
    status, headers, body = request(server, "/" + "files/" + VIDEO, headers={"Range": "bytes=100-1123"})
    assert status == 206
    assert headers["content-range"] == f"bytes 100-1123/{len(whole)}"
    assert body == whole[100:1124]
    status, headers, body = request(server, "/files/" + VIDEO, headers={"Range": f"bytes={len(whole) - 10}-"})
    assert status == 206 and body == whole[-10:]
    status, headers, body = request(server, "/files/" + VIDEO)
    assert status == 200 and body == whole and headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize("path", [
    "/files/../meta/info.json",
    "/files/videos/../../meta/info.json",
    "/files/%2e%2e/meta/info.json",
    "/files/videos%2f..%2f..%2fmeta%2finfo.json",
    "/files/%252e%252e/meta/info.json",
    "/files/..%5cmeta%5cinfo.json",
    "/files//etc/passwd",
    "/files/%2Fetc%2Fpasswd",
    "/files/meta/info.json",
    "/files/data/chunk-000/file-000.parquet",
    "/files/meta/episodes/chunk-000/file-000.parquet",
    "/files/videos/",
    "/files/videos",
    f"/files/videos/{TOP}/",
    f"/files/videos/{TOP}/chunk-000/",
    "/files/" + VIDEO + "/",
    "/files/" + VIDEO.replace("file-000", "file-001"),
    "/static/../meta/info.json",
    "/static/%2e%2e/_server.py",
    "/static/",
    "/static/index.html",
    "/preview/../../etc/passwd",
    "/preview/0123456789abcdef0123456789abcdef.mp4",
    "/meta/info.json",
    "/videos/",
    "/api/episode/99",
    "/api/episode/-1",
    "/api/episode/..%2f..%2fmeta",
])
def test_refused(serve, ids_dataset, path):
    server = serve(ids_dataset, run_verify=False)
    status, _, body = request(server, path)
    assert status in (400, 403, 404), (path, status)
    assert b"codebase_version" not in body and b"root:" not in body and b"ftyp" not in body


def test_symlink_out_of_the_dataset_is_refused(serve, ids_dataset, tmp_path):
    root = tmp_path / "linked"
    shutil.copytree(ids_dataset, root)
    outside = tmp_path / "secret.mp4"
    shutil.move(root / VIDEO, outside)
    os.symlink(outside, root / VIDEO)
    server = serve(root, run_verify=False)
    assert request(server, "/files/" + VIDEO)[0] == 404
    # A link that stays inside the dataset is fine.
    wrist = "videos/observation.images.wrist/chunk-000/file-000.mp4"
    inside = root / "videos" / "moved.mp4"
    shutil.move(root / wrist, inside)
    os.symlink(inside, root / wrist)
    server = serve(root, run_verify=False)
    status, _, body = request(server, "/files/" + wrist)
    assert status == 200 and body == inside.read_bytes()


def test_symlinked_videos_folder_out_of_the_dataset_is_refused(serve, ids_dataset, tmp_path):
    root = tmp_path / "linked"
    shutil.copytree(ids_dataset, root)
    shutil.move(root / "videos", tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", root / "videos")
    server = serve(root, run_verify=False)
    assert request(server, "/files/" + VIDEO)[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_nothing_writes(serve, ids_dataset, method):
    server = serve(ids_dataset, run_verify=False)
    before = {p: p.stat().st_mtime_ns for p in ids_dataset.rglob("*")}
    for path in ("/", "/files/" + VIDEO, "/api/episode/0", "/api/verify"):
        assert request(server, path, method)[0] == 405, (method, path)
    assert {p: p.stat().st_mtime_ns for p in ids_dataset.rglob("*")} == before


def test_foreign_host_header_is_refused(serve, ids_dataset):
    # A page on another site that rebinds its name to 127.0.0.1 sends its own name as Host.
    server = serve(ids_dataset, run_verify=False)
    assert request(server, "/", headers={"Host": f"evil.example:{server.port}"})[0] == 403
    assert request(server, "/", headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="has no meta/ folder"):
        make_app(tmp_path)


def test_verify_runs_in_the_background_and_is_cached(serve, drops_dataset, tmp_path):
    cache = tmp_path / "verify-cache"
    server = serve(drops_dataset, cache_dir=cache)
    # The list does not wait for verify: the page answers while it runs.
    assert request(server, "/")[0] == 200
    deadline = time.monotonic() + 120
    while (state := get_json(server, "/api/verify"))["state"] == "running":
        assert time.monotonic() < deadline, "verify did not finish in 120 s"
        time.sleep(0.2)
    assert state["state"] == "done" and state["cached"] is False
    direct = verify(drops_dataset).to_dict()
    assert state["report"]["findings"] == direct["findings"] and state["report"]["rows"] == direct["rows"]
    assert {f["code"] for f in direct["findings"]} & {"dropped_frames", "system_overloaded"}
    again = serve(drops_dataset, cache_dir=cache)
    cached = get_json(again, "/api/verify")
    assert cached["state"] == "done" and cached["cached"] is True
    assert cached["report"]["findings"] == state["report"]["findings"]


def _wait_preview(server, position: int, key: str) -> dict:
    deadline = time.monotonic() + 120
    while (state := get_json(server, f"/api/preview/{position}/{key}"))["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert state["state"] == "ready", state
    return state


def _decode(data: bytes, tmp_path: Path) -> tuple[str, str, list]:
    path = tmp_path / "got.mp4"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [(f.pts * s.time_base, f.to_ndarray(format="rgb24")) for f in c.decode(s)]
        return s.codec_context.name, s.codec_context.pix_fmt, frames


def test_hevc_gets_an_h264_preview_of_the_episode(serve, hevc_dataset, tmp_path):
    cache = tmp_path / "cache"
    server = serve(hevc_dataset, run_verify=False, cache_dir=cache)
    cam = get_json(server, "/api/episode/1")["cameras"][0]
    assert cam["codec"] == "hevc" and "transcoded to H.264" in cam["preview"]["reason"]
    state = _wait_preview(server, 1, TOP)
    status, headers, body = request(server, state["src"])
    assert status == 200 and headers["content-type"] == "video/mp4"
    assert request(server, state["src"], headers={"Range": "bytes=0-9"})[0] == 206
    codec, pix_fmt, frames = _decode(body, tmp_path)
    assert (codec, pix_fmt) == ("h264", "yuv420p")
    # One frame per row, from time 0, each the episode's own frame.
    assert [t for t, _ in frames] == [pytest.approx(i / FPS) for i in range(15)]
    assert [read_id(f) for _, f in frames] == [ident(1, i) for i in range(15)]
    # Cached outside the dataset: a new server finds it ready at once.
    assert list(cache.rglob("*.mp4")) and not list(hevc_dataset.rglob("*preview*"))
    again = serve(hevc_dataset, run_verify=False, cache_dir=cache)
    assert get_json(again, f"/api/preview/1/{TOP}")["state"] == "ready"


def test_depth_is_shown_as_a_colour_map(serve, depth_dataset, tmp_path):
    server = serve(depth_dataset, run_verify=False)
    cams = {c["key"]: c for c in get_json(server, "/api/episode/0")["cameras"]}
    assert cams[TOP]["preview"] is None
    assert cams[DEPTH]["pix_fmt"] == "gray12le" and cams[DEPTH]["preview"]["reason"].startswith("depth")
    state = _wait_preview(server, 0, DEPTH)
    codec, pix_fmt, frames = _decode(request(server, state["src"])[2], tmp_path)
    assert (codec, len(frames)) == ("h264", 20)
    h, w = frames[0][1].shape[:2]
    for _, rgb in frames:
        near = rgb[h // 2:, : w // 4].reshape(-1, 3).mean(0)
        far = rgb[h // 2:, -w // 4:].reshape(-1, 3).mean(0)
        none = rgb[: h // 16].reshape(-1, 3).mean(0)
        assert near[0] > near[2] + 60, near  # near is warm
        assert far[2] > far[0] + 60, far  # far is cold
        assert none.max() < 40, none  # no reading is black


def test_lerobot_dataset_is_served(serve):
    server = serve(LEROBOT, run_verify=False)
    summary = get_json(server, "/api/dataset")
    assert summary["episodes"]["length"] == [10, 12] and summary["drops_recorded"] is False
    cam = get_json(server, "/api/episode/1")["cameras"][0]
    assert (cam["codec"], cam["preview"], cam["dropped"]) == ("av1", None, None)
