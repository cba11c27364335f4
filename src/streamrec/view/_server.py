"""The view server: a read-only aiohttp application over one dataset.

What it serves, and nothing else:
- the page and its three assets (the charting library comes from the installed `plotly` package);
- JSON: the episode list, one episode's cameras and series, verify's findings, preview progress;
- the MP4s that the episodes table references, by their exact relative path, and the previews it
  made for them. Files are answered by aiohttp's FileResponse, which honours HTTP Range (206), so
  the browser seeks without downloading the whole file.

A request path is never joined onto the dataset root: it is looked up in the set of referenced
paths, and the file it names is then resolved and must still lie inside the root, so `..`,
percent-encoded `..`, absolute paths and symlinks pointing out of the dataset are all refused.
Only GET and HEAD exist. When bound to a loopback address, requests must name a loopback host
(a web page elsewhere cannot reach the server through DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from . import _preview
from ._data import Camera, Dataset
from ._health import HealthCheck

log = logging.getLogger("streamrec.view")

_STATIC = {"app.js": "application/javascript", "app.css": "text/css"}
_PREVIEW_NAME = re.compile(r"^[0-9a-f]{32}\.mp4$")
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'")


def plotly_js() -> Path:
    """plotly.js as the `plotly` Python package ships it (no network needed to show a plot)."""
    spec = find_spec("plotly")  # finds the package without importing it (importing plotly costs ~100 MB)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("streamrec view needs the 'plotly' package: pip install 'streamrec[view]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RuntimeError(f"the installed plotly package has no {path}; reinstall it: pip install -U plotly")
    return path


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class _Job:
    key: str
    total: int
    done: int = 0
    state: str = "running"
    error: str | None = None


class Viewer:
    """The state behind the routes: the dataset, the served files, previews and the health check."""

    def __init__(self, root: Path, *, cache_dir: Path | None = None, run_verify: bool = True) -> None:
        self.dataset = Dataset(root)
        self.root = self.dataset.root
        self.real_root = self.root.resolve()
        self.cache_dir = cache_dir or _preview.default_cache_dir()
        self.files = self.dataset.video_files()
        self.health = HealthCheck(self.root, self.cache_dir) if run_verify else None
        self._streams: dict[str, _preview.StreamInfo | str] = {}
        self._jobs: dict[str, _Job] = {}
        self._previews: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamrec-view-preview")
        # One reader thread: Arrow's allocator keeps a heap per thread, so more threads, more memory.
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamrec-view-read")
        self.summary_json = json.dumps(self.summary(), separators=(",", ":"))

    # -- JSON documents ------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        d = self.dataset
        eps = d.episodes
        return {
            "name": self.root.resolve().name, "root": str(self.root), "fps": d.fps, "robot_type": d.robot_type,
            "cameras": [{"key": c.key, "name": c.name, "codec": c.codec, "pix_fmt": c.pix_fmt,
                         "is_depth": c.is_depth, "width": c.width, "height": c.height} for c in d.cameras],
            "series": list(d.series_features),
            "tasks": list(d.tasks),
            "drops_recorded": any(s.dropped is not None for e in eps for s in e.spans.values()),
            # Columns rather than one object per episode: a 1,000-episode list stays a few tens of kB.
            "episodes": {
                "index": [e.index for e in eps],
                "length": [e.length for e in eps],
                "tasks": ["; ".join(e.tasks) for e in eps],
                "dropped": [e.dropped for e in eps],
            },
        }

    def episode(self, position: int) -> dict[str, Any]:
        ep = self.dataset.episodes[position]
        cameras = []
        for cam in self.dataset.cameras:
            span = ep.spans.get(cam.key)
            if span is None:
                continue
            entry: dict[str, Any] = {
                "key": cam.key, "name": cam.name, "is_depth": cam.is_depth, "file": span.video_file,
                "src": "/files/" + quote(span.video_file), "from": span.from_s, "to": span.to_s,
                "dropped": span.dropped,
                "dropped_slots": None if span.dropped_slots is None else list(span.dropped_slots),
                "adaptations": None if span.adaptations is None else [list(a) for a in span.adaptations],
                "preview": None, "error": None,
            }
            entry["preview_status"] = f"/api/preview/{position}/{quote(cam.key)}"
            stream = self._stream_info(cam, span.video_file)
            if isinstance(stream, str):
                entry["error"] = stream
            else:
                entry["codec"], entry["pix_fmt"] = stream.codec, stream.pix_fmt
                reason = _preview.preview_reason(stream, cam.is_depth)
                if reason:
                    entry["preview"] = {"reason": reason, "status": entry["preview_status"]}
            cameras.append(entry)
        series = [{"name": s.name, "names": list(s.names), "values": _columns(s.values)}
                  for s in self.dataset.series(position)]
        return {"position": position, "index": ep.index, "length": ep.length, "tasks": list(ep.tasks),
                "fps": self.dataset.fps, "cameras": cameras, "series": series}

    def _stream_info(self, cam: Camera, rel: str) -> _preview.StreamInfo | str:
        """The stream as info.json states it, or as the MP4's header says when info.json does not.

        info.json is trusted so that showing an episode opens no MP4 on the server. Should it be
        wrong, the browser fails to play the file and the page asks for a preview, which probes the
        file itself (and verify reports the mismatch as `video_codec`).
        """
        codec, pix_fmt = cam.stated_codec(rel), cam.pix_fmt
        if codec and pix_fmt:
            if self.safe_path(rel) is None:
                return f"{rel} is missing or lies outside the dataset"
            return _preview.StreamInfo(codec=codec, pix_fmt=pix_fmt, width=cam.width or 0, height=cam.height or 0)
        return self._stream(rel)

    def _stream(self, rel: str) -> _preview.StreamInfo | str:
        """The stream as the MP4's header says (probed once per file)."""
        if rel not in self._streams:
            path = self.safe_path(rel)
            if path is None:
                self._streams[rel] = f"{rel} is missing or lies outside the dataset"
            else:
                try:
                    self._streams[rel] = _preview.probe(path)
                except Exception as e:  # noqa: BLE001 - any unreadable file is reported on the page
                    self._streams[rel] = f"{rel} cannot be opened: {e}"
        return self._streams[rel]

    # -- files ---------------------------------------------------------------------------------------

    def safe_path(self, rel: str) -> Path | None:
        """The real file for a referenced relative path, or None when it is not one we may serve."""
        if rel not in self.files:
            return None
        try:
            real = (self.root / rel).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_relative_to(self.real_root) or not real.is_file():
            return None
        return real

    # -- previews ------------------------------------------------------------------------------------

    def preview_state(self, position: int, key: str, unplayable: bool = False) -> dict[str, Any]:
        """Where the preview of one episode's camera is; the first call starts making it.

        `unplayable`: the browser failed to play the original, so a preview is made even when the
        stream looked playable.
        """
        ep = self.dataset.episodes[position]
        cam = next((c for c in self.dataset.cameras if c.key == key), None)
        span = ep.spans.get(key)
        if cam is None or span is None:
            raise web.HTTPNotFound(text=f"episode {position} has no camera {key!r}")
        src = self.safe_path(span.video_file)
        stream = self._stream(span.video_file)
        if src is None or isinstance(stream, str):
            raise web.HTTPNotFound(text=f"{span.video_file} cannot be served")
        if not _preview.preview_reason(stream, cam.is_depth) and not unplayable:
            raise web.HTTPNotFound(text=f"{span.video_file} plays as it is; it has no preview")
        fps = self.dataset.fps
        name = _preview.cache_key(src, span.from_s, span.to_s, fps, cam.is_depth)
        dst = self.cache_dir / "previews" / f"{name}.mp4"
        with self._lock:
            job = self._jobs.get(name)
            if job is None:
                job = self._jobs[name] = _Job(key=name, total=ep.length)
                if dst.is_file():
                    job.state, job.done = "ready", ep.length
                    self._previews[name] = dst
                else:
                    self._pool.submit(self._transcode, job, src, dst, span.from_s, span.to_s, fps, cam.is_depth)
        out: dict[str, Any] = {"state": job.state, "done": job.done, "total": job.total}
        if job.state == "ready":
            out["src"] = f"/preview/{name}.mp4"
        if job.error:
            out["error"] = job.error
        return out

    def _transcode(self, job: _Job, src: Path, dst: Path, from_s: float, to_s: float, fps: float,
                   is_depth: bool) -> None:
        def progress(n: int) -> None:
            job.done = n

        t0 = time.monotonic()
        try:
            frames = _preview.make_preview(src, dst, from_s=from_s, to_s=to_s, fps=fps, is_depth=is_depth,
                                           progress=progress)
        except Exception as e:  # noqa: BLE001 - shown on the page instead of the video
            log.exception("preview of %s failed", src)
            job.state, job.error = "failed", f"{type(e).__name__}: {e}"
            return
        log.info("preview of %s [%.3f, %.3f) s: %d frames in %.1f s", src.name, from_s, to_s, frames,
                 time.monotonic() - t0)
        with self._lock:
            self._previews[job.key] = dst
            job.state = "ready"

    def preview_file(self, name: str) -> Path | None:
        """A preview this server made (or found in its cache) for a referenced file; `name` is `<key>.mp4`."""
        return self._previews.get(name.removesuffix(".mp4")) if _PREVIEW_NAME.match(name) else None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.reader.shutdown(wait=False, cancel_futures=True)
        if self.health is not None:
            self.health.close()


def _columns(values: Any) -> list[list[float | None]]:
    """Dimension-major lists for plotting; NaN/inf become null (JSON has no NaN)."""
    return [[v if math.isfinite(v) else None for v in col.tolist()] for col in values.T]


# -- the aiohttp application --------------------------------------------------------------------------

VIEWER = web.AppKey("viewer", Viewer)


def make_app(root: str | Path, *, cache_dir: Path | None = None, run_verify: bool = True,
             allowed_hosts: frozenset[str] | None = None) -> web.Application:
    """The application for one dataset. `allowed_hosts`: accepted Host header names (any when None)."""
    viewer = Viewer(Path(root), cache_dir=cache_dir, run_verify=run_verify)
    page = (resources.files(__package__) / "static" / "index.html").read_text()
    page = page.replace("__TITLE__", _html_escape(f"{viewer.root.resolve().name} · streamrec view"))
    page = page.replace("__DATASET__", viewer.summary_json.replace("<", "\\u003c"))
    plotly = plotly_js()
    static = {name: resources.files(__package__) / "static" / name for name in _STATIC}

    @web.middleware
    async def guard(request: web.Request, handler):
        if allowed_hosts is not None and (request.host or "").rsplit(":", 1)[0].strip("[]") not in allowed_hosts:
            raise web.HTTPForbidden(text="unexpected Host header: this server answers only to its own address")
        response = await handler(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", _CSP)
        return response

    async def index(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "plotly.min.js":
            return web.FileResponse(plotly, headers={"Content-Type": "application/javascript",
                                                     "Cache-Control": "max-age=86400"})
        if name not in _STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=static[name].read_bytes(), content_type=_STATIC[name],
                            headers={"Cache-Control": "no-cache"})

    async def dataset(request: web.Request) -> web.Response:
        return web.Response(text=viewer.summary_json, content_type="application/json")

    async def episode(request: web.Request) -> web.Response:
        position = _position(request, viewer)
        doc = await asyncio.get_running_loop().run_in_executor(viewer.reader, viewer.episode, position)
        return web.json_response(doc)

    async def health(request: web.Request) -> web.Response:
        if viewer.health is None:
            return web.json_response({"state": "off"})
        return web.json_response(viewer.health.state())

    async def preview_state(request: web.Request) -> web.Response:
        position = _position(request, viewer)
        unplayable = request.query.get("unplayable") == "1"
        state = await asyncio.get_running_loop().run_in_executor(
            viewer.reader, viewer.preview_state, position, request.match_info["key"], unplayable)
        return web.json_response(state)

    async def video(request: web.Request) -> web.StreamResponse:
        path = viewer.safe_path(request.match_info["path"])
        if path is None:
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "video/mp4", "Cache-Control": "no-cache"})

    async def preview(request: web.Request) -> web.StreamResponse:
        path = viewer.preview_file(request.match_info["name"])
        if path is None or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "video/mp4", "Cache-Control": "no-cache"})

    async def on_startup(app: web.Application) -> None:
        if viewer.health is not None:
            viewer.health.start()

    async def on_cleanup(app: web.Application) -> None:
        viewer.close()

    app = web.Application(middlewares=[guard])
    app[VIEWER] = viewer
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", asset)
    app.router.add_get("/api/dataset", dataset)
    app.router.add_get("/api/episode/{position}", episode)
    app.router.add_get("/api/verify", health)
    app.router.add_get("/api/preview/{position}/{key}", preview_state)
    app.router.add_get("/files/{path:.+}", video)
    app.router.add_get("/preview/{name}", preview)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def _position(request: web.Request, viewer: Viewer) -> int:
    raw = request.match_info["position"]
    if not raw.isdigit() or int(raw) >= len(viewer.dataset.episodes):
        raise web.HTTPNotFound(text=f"no episode at position {raw!r}")
    return int(raw)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
