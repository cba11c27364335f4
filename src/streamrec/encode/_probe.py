"""Which encoders work on this machine, found by encoding, and what `vcodec=auto` picks.

An encoder being in the FFmpeg build says nothing about the machine: PyAV's Linux wheels carry
NVENC, QSV and V4L2 M2M encoders that fail at open without the device and its driver. So each
candidate is tried for real: opened at the cameras' size, pixel format and rate, fed a few
camera-like frames, flushed, and its packets decoded back. That happens in a child process
(`python -c`, like the encoder processes) with a deadline per encoder, because a broken driver
can hang or crash the process that opens it; the recorder only waits, then kills the child.

Results are cached per machine in `$XDG_CACHE_HOME/streamrec/` (else `~/.cache/streamrec/`), in
a file named after what decides them: PyAV and FFmpeg versions, kernel, GPU driver version and
device nodes. A driver update or a new GPU makes a new file; `streamrec probe --refresh` (or
`refresh=True`) measures again. A cached "works" can still fail at record time (NVENC's session
limit depends on what else runs): the encoder processes fall back then (see `_fallback`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import json
import logging
import os
import platform
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._platform import available_cpus
from . import _codecs
from ._codecs import AUTO, ENCODERS, SOFTWARE_LAST_RESORT, auto_order, compiled_in
from ._config import EncoderConfig

log = logging.getLogger("streamrec")

PROBE_FRAMES = 30
"""Frames each probe encodes."""
_WARM_UP_FRAMES = 5
"""Of those, encoded before the clock starts: the first frames cost an encoder more (buffers, threads)."""
PROBE_TIMEOUT_S = 20.0
"""How long one encoder may take to open, encode, flush and decode back before it counts as hung."""
_CHILD_COMMAND = "from streamrec.encode._probe import _child_main; _child_main()"
_PROBE_VERSION = "3"
"""Part of the cache key: bump it when what a probe does or reports changes."""


@dataclass(frozen=True, slots=True)
class EncoderProbe:
    """What trying one encoder on this machine showed."""

    encoder: str
    family: str
    platform: str
    """Where the family runs (`NVIDIA GPU`, `software`, ...)."""
    compiled_in: bool
    """The FFmpeg build has this encoder."""
    works: bool
    """It opened, encoded every frame in order, flushed, and its packets decoded back."""
    width: int
    height: int
    pix_fmt: str
    fps: int
    options: Mapping[str, str]
    """AVOptions it was opened with (EncoderConfig's settings mapped for this encoder)."""
    ms_per_frame: float | None = None
    """Wall time per frame to encode and flush the probe's frames (the codec chose its threads)."""
    cpu_ms_per_frame: float | None = None
    """CPU time per frame over all of the encoder's threads (for a hardware encoder: the conversion
    from RGB and the driver's share)."""
    open_ms: float | None = None
    error: str | None = None
    """Why it does not work: FFmpeg's own error text (e.g. "Cannot load libcuda.so.1"), a timeout, ..."""
    cached: bool = False
    """Read from the cache rather than measured by this call."""

    @property
    def max_cameras(self) -> int | None:
        """Cameras of this size it could keep up with at `fps`, by this measurement alone.

        The CPU limit: the machine's cores over the CPU time per frame. A hardware encoder is also
        held to one frame at a time on its device (wall time per frame), as sessions on one GPU
        share its encoder engine. The capture loop and anything else running need their share too.
        """
        if not self.works or not self.ms_per_frame or not self.cpu_ms_per_frame:
            return None
        budget_ms = 1000.0 / self.fps
        cameras = available_cpus() * budget_ms / self.cpu_ms_per_frame
        if ENCODERS[self.encoder].family.hardware:
            cameras = min(cameras, budget_ms / self.ms_per_frame)
        return int(cameras)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["options"] = dict(self.options)
        out["max_cameras"] = self.max_cameras
        return out


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """`probe()`'s answer: every encoder tried, and what `vcodec=auto` picks here."""

    results: tuple[EncoderProbe, ...]
    auto: str
    """The encoder `vcodec=auto` resolves to on this machine at this size."""
    machine: Mapping[str, str]
    """What the cache is keyed by (versions, driver, device nodes)."""
    cache_file: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"auto": self.auto, "machine": dict(self.machine),
                "cache_file": None if self.cache_file is None else str(self.cache_file),
                "results": [r.to_dict() for r in self.results]}


# -- the machine and the cache ----------------------------------------------------------------


def _first_line(path: str) -> str:
    try:
        with open(path) as f:
            return f.readline().strip()
    except OSError:
        return ""


def machine_key() -> dict[str, str]:
    """What decides whether an encoder works here: versions, GPU driver and device nodes."""
    import av

    return {
        "probe": _PROBE_VERSION,
        "pyav": av.__version__,
        "ffmpeg": str(getattr(av, "ffmpeg_version_info", "")),
        "libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
        "platform": sys.platform,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "macos": platform.mac_ver()[0],
        "nvidia_driver": _first_line("/proc/driver/nvidia/version"),
        "devices": " ".join(sorted(glob.glob("/dev/dri/*") + glob.glob("/dev/nvidia*") + glob.glob("/dev/video*"))),
    }


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "streamrec"


def _cache_file(machine: Mapping[str, str]) -> Path:
    digest = hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"probe-{digest}.json"


def _load_cache(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _save_cache(path: Path, machine: Mapping[str, str], new: Mapping[str, dict[str, Any]]) -> None:
    """Merge `new` into the cache file (re-read first: another recorder may have added entries)."""
    try:
        results = {**_load_cache(path), **new}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"machine": dict(machine), "results": results}, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as e:  # a read-only home must not stop a recording; it only costs a re-probe
        log.debug("could not write the encoder probe cache %s: %s", path, e)


# -- the child process ------------------------------------------------------------------------


def _request(config: EncoderConfig, width: int, height: int, fps: int, encoder_threads: int | None,
             frames: int) -> dict[str, Any]:
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    fields["extra_options"] = dict(config.extra_options)
    return {"config": fields, "width": width, "height": height, "fps": fps, "threads": encoder_threads,
            "frames": frames}


def _test_frames(width: int, height: int, count: int) -> list[Any]:
    """Camera-like frames: smooth shapes with a little sensor noise, moving 3 pixels per frame.

    Flat frames would make every encoder look faster than it is, and pure noise slower. Against
    the ALOHA footage (640x480) this costs SVT-AV1 and x264 ~20-30 % more CPU per frame, so the
    camera counts `streamrec probe` derives from it err on the safe side.
    """
    import av
    import numpy as np

    rng = np.random.default_rng(width * height)
    block = 32
    coarse = rng.integers(0, 256, (height // block + 1, width // block + 1, 3), np.uint8)
    scene = np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:height, :width].astype(np.int32)
    for axis in (0, 1):  # a box blur of the blocks, by running sums
        pad = [(0, 0)] * 3
        pad[axis] = (block, 0)
        sums = np.cumsum(np.pad(scene, pad, mode="edge"), axis=axis)
        scene = (np.take(sums, range(block, sums.shape[axis]), axis=axis)
                 - np.take(sums, range(sums.shape[axis] - block), axis=axis)) // block
    frames = []
    for i in range(count):
        image = np.roll(scene, 3 * i, axis=1) + rng.integers(-3, 4, (height, width, 1))
        frames.append(av.VideoFrame.from_ndarray(np.clip(image, 0, 255).astype(np.uint8), format="rgb24"))
    return frames


def _probe_one(request: Mapping[str, Any]) -> dict[str, Any]:
    """Open, encode, flush and decode back, in this (child) process."""
    import av

    config = EncoderConfig(**request["config"])
    width, height, fps, count = request["width"], request["height"], request["fps"], request["frames"]
    frames = _test_frames(width, height, count)
    warm_up = min(_WARM_UP_FRAMES, count - 1)
    with av.logging.Capture() as logs:
        try:
            t0 = time.perf_counter()
            codec = _codecs.open_codec(config, width, height, fps, request["threads"])
            t_open = time.perf_counter()
            packets = []
            for i, frame in enumerate(frames):
                if i == warm_up:
                    t1, cpu1 = time.perf_counter(), time.process_time()
                frame.pts = i
                packets.extend(codec.encode(frame))
            packets.extend(codec.encode(None))
            t2, cpu2 = time.perf_counter(), time.process_time()
            if len(packets) != count:
                raise RuntimeError(f"returned {len(packets)} packets for {count} frames")
            out_of_order = [k for k, p in enumerate(packets) if p.pts != k]
            if out_of_order:
                k = out_of_order[0]
                raise RuntimeError(f"emitted the frame with pts {packets[k].pts} as packet {k}; streamrec needs "
                                   "packets in presentation order")
            decoder = _codecs.open_decoder(config.stream_codec)
            decoded = [f for p in packets for f in decoder.decode(p)] + list(decoder.decode(None))
            if not decoded or (decoded[0].width, decoded[0].height) != (width, height):
                got = f"{decoded[0].width}x{decoded[0].height}" if decoded else "nothing"
                raise RuntimeError(f"its stream decoded back to {got}, not {width}x{height}")
        except Exception as e:  # noqa: BLE001 - the probe's answer is the error text
            return {"works": False, "error": _codecs.error_text(e, logs)}
    timed = count - warm_up
    return {"works": True, "open_ms": (t_open - t0) * 1e3, "ms_per_frame": (t2 - t1) * 1e3 / timed,
            "cpu_ms_per_frame": (cpu2 - cpu1) * 1e3 / timed}


def _child_main() -> None:
    """Entry of a probe process: requests as JSON on stdin, one JSON line per result on stdout."""
    import av

    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # a library printing to stdout must not garble the results
    av.logging.set_level(av.logging.WARNING)  # captured per probe, not printed
    for request in json.load(sys.stdin):
        results.write(json.dumps(_probe_one(request)) + "\n")
        results.flush()


def _child_env() -> dict[str, str]:
    package_root = str(Path(__file__).resolve().parents[2])  # so the child imports this very streamrec
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:  # stuck in the kernel (a driver call): nothing more we can do
        log.warning("probe process %d does not end after SIGKILL (stuck in a driver?); leaving it", proc.pid)


def _run_child(batch: Sequence[Mapping[str, Any]], timeout_s: float, command: Sequence[str]) -> list[dict[str, Any]]:
    """Probe `batch` in one child; returns results for a prefix of it (at least one).

    If the child hangs or dies on a request, that request gets the failure and the rest are
    left for a new child.
    """
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                env=_child_env(), start_new_session=True)
        try:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(json.dumps(list(batch)).encode())
                proc.stdin.close()
            fd = proc.stdout.fileno()
            buffer = b""
            with selectors.DefaultSelector() as selector:
                selector.register(fd, selectors.EVENT_READ)
                for _ in batch:
                    deadline = time.monotonic() + timeout_s
                    while b"\n" not in buffer:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            _stop(proc)
                            out.append({"works": False, "error": f"no answer within {timeout_s:g} s (a hung "
                                        "driver?); the probe process was stopped"})
                            return out
                        if not selector.select(left):
                            continue
                        chunk = os.read(fd, 1 << 16)
                        if not chunk:
                            out.append({"works": False, "error": _death(proc, stderr)})
                            return out
                        buffer += chunk
                    line, buffer = buffer.split(b"\n", 1)
                    out.append(json.loads(line))
            proc.wait(timeout_s)
        except BaseException:
            _stop(proc)
            raise
        finally:
            proc.stdout.close()
    return out


def _death(proc: subprocess.Popen, stderr: Any) -> str:
    try:
        code = proc.wait(5)
    except subprocess.TimeoutExpired:
        _stop(proc)
        code = proc.returncode
    how = f"was killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited ({code})"
    stderr.seek(0)
    tail = stderr.read().decode(errors="replace").strip().splitlines()[-3:]
    return f"the probe process {how} while trying it" + (f"; its last output: {' | '.join(tail)}" if tail else "")


def _run(requests: Sequence[Mapping[str, Any]], timeout_s: float, command: Sequence[str]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    while len(results) < len(requests):
        results.extend(_run_child(requests[len(results):], timeout_s, command))
    return results


# -- probing ------------------------------------------------------------------------------------


def fit(base: EncoderConfig, encoder: str) -> tuple[EncoderConfig, tuple[str, ...]]:
    """`base`'s settings for `encoder`: as they are if it takes them, else without the ones it
    has no use for (preset, extra_options), said in the returned notes.

    Raises:
        ConfigError: it cannot take them even so (e.g. the pix_fmt).
    """
    if base.encoder == encoder:
        return base, ()
    preset = (f"preset={base.preset!r}",) if base.preset is not None else ()
    extra = (f"extra_options={dict(base.extra_options)}",) if base.extra_options else ()
    attempts: tuple[tuple[dict[str, Any], tuple[str, ...]], ...] = (
        ({}, ()), ({"preset": None}, preset), ({"preset": None, "extra_options": {}}, (*preset, *extra)))
    first_error: ConfigError | None = None
    for changes, dropped in attempts:
        try:
            return dataclasses.replace(base, vcodec=encoder, **changes), dropped
        except ConfigError as e:
            first_error = first_error or e
    assert first_error is not None
    raise first_error


def _candidates(encoders: Sequence[str] | None) -> list[str]:
    if encoders is not None:
        return [_codecs.encoder_name(name) for name in encoders]  # `h264` means libx264 here too
    order = auto_order()
    rest = [name for name, enc in ENCODERS.items()
            if name not in order and (compiled_in(name) or not enc.family.hardware)]
    return [*order, *rest]


def probe(encoders: Sequence[str] | None = None, *, width: int = 640, height: int = 480, fps: int = 30,
          encoder: EncoderConfig | None = None, encoder_threads: int | None = None, refresh: bool = False,
          timeout_s: float = PROBE_TIMEOUT_S, frames: int = PROBE_FRAMES,
          _command: Sequence[str] | None = None) -> ProbeReport:
    """Try encoders on this machine by encoding, and say what `vcodec=auto` picks.

    Args:
        encoders: FFmpeg encoder names; default: `auto`'s candidates for this platform, then the
            other software encoders and any other hardware encoder in this FFmpeg build.
        width, height, fps: The cameras' size and rate (results depend on them).
        encoder: Settings to map for each encoder (crf, g, pix_fmt, ...); default `EncoderConfig()`.
        encoder_threads: As `DatasetRecorder.create`'s.
        refresh: Measure again instead of reading the cache (the cache is then updated).
        timeout_s: Per encoder; one that takes longer counts as hung and its process is killed.
        frames: Frames each encoder encodes.

    Returns:
        A ProbeReport: one EncoderProbe per encoder, in the order tried, and `auto`'s choice.
    """
    base = encoder or EncoderConfig()
    machine = machine_key()
    path = _cache_file(machine)
    cached = {} if refresh else _load_cache(path)
    names = _candidates(encoders)
    results: dict[str, EncoderProbe] = {}
    todo: list[tuple[str, str, dict[str, Any], EncoderConfig]] = []
    for name in names:
        enc = ENCODERS.get(name)
        if enc is None:
            raise ConfigError(f"probe(): unknown encoder {name!r}; streamrec drives {sorted(ENCODERS)}")
        common = {"encoder": name, "family": enc.family.name, "platform": enc.family.platform, "width": width,
                  "height": height, "pix_fmt": base.pix_fmt, "fps": fps}
        if not compiled_in(name):
            results[name] = EncoderProbe(compiled_in=False, works=False, options={},
                                        error="not in this FFmpeg build", **common)
            continue
        try:
            config, _ = fit(base, name)
        except ConfigError as e:
            results[name] = EncoderProbe(compiled_in=True, works=False, options={},
                                        error=f"the settings do not apply: {e}", **common)
            continue
        request = _request(config, width, height, fps, encoder_threads, frames)
        key = json.dumps(request, sort_keys=True)
        options = config.codec_options(encoder_threads)
        if key in cached:
            results[name] = EncoderProbe(compiled_in=True, options=options, cached=True, **common, **cached[key])
        else:
            todo.append((name, key, request, config))
            results[name] = EncoderProbe(compiled_in=True, works=False, options=options, **common)
    if todo:
        answers = _run([r for _, _, r, _ in todo], timeout_s, _command or [sys.executable, "-c", _CHILD_COMMAND])
        for (name, _, _, _), answer in zip(todo, answers):
            results[name] = dataclasses.replace(results[name], **answer)
        _save_cache(path, machine, {key: answer for (_, key, _, _), answer in zip(todo, answers)})
    ordered = tuple(results[name] for name in names)
    working = {r.encoder for r in ordered if r.works}
    auto = next((name for name in auto_order() if name in working), SOFTWARE_LAST_RESORT)
    return ProbeReport(results=ordered, auto=auto, machine=machine, cache_file=path)


def choose_encoders(config: EncoderConfig, width: int, height: int, fps: int, encoder_threads: int | None,
                    *, camera: str = "", timeout_s: float = PROBE_TIMEOUT_S) -> tuple[EncoderConfig, ...]:
    """The encoders one camera uses, in order: the one it starts with, then its fallbacks.

    `auto` becomes the first encoder of this platform's order that works here at this size;
    the working ones after it are its fallbacks. An explicit hardware encoder is kept (it is
    tried at open and falls back then if it fails) with the working encoders after it in that
    order as fallbacks. Every chain ends with the software encoder (libsvtav1), which is not
    probed: it is the last resort whatever a probe says.
    """
    name = config.encoder
    if name == SOFTWARE_LAST_RESORT:
        return (config,)
    try:
        last, dropped = fit(config, SOFTWARE_LAST_RESORT)
    except ConfigError as e:
        if name == AUTO:
            raise ConfigError(f"EncoderConfig.vcodec = 'auto': these settings do not fit even the software "
                              f"encoder it ends with ({e})") from e
        log.info("%s: %s has no fallback: %s does not take these settings (%s)", camera, name,
                 SOFTWARE_LAST_RESORT, e)
        return (config,)
    if dropped:
        log.info("%s: fallback %s would run without %s", camera, SOFTWARE_LAST_RESORT, ", ".join(dropped))
    order = auto_order()[:-1]
    if name == AUTO:
        later = order
    elif name in order:
        later = order[order.index(name) + 1:]
    else:  # a software encoder, or hardware not in this platform's order: straight to the last resort
        return (config, last)
    report = probe(later, width=width, height=height, fps=fps, encoder=config, encoder_threads=encoder_threads,
                   timeout_s=timeout_s) if later else None
    working = []
    for result in report.results if report else ():
        if result.works:
            working.append(fit(config, result.encoder)[0])
    if name != AUTO:
        return (config, *working, last)
    chosen = working[0] if working else last
    failures: dict[str, list[str]] = {}  # the same reason for several encoders is said once
    for r in report.results if report else ():
        if not r.works:
            failures.setdefault(r.error or "?", []).append(r.encoder)
    why_not = "; ".join(f"{', '.join(names)}: {error}" for error, names in failures.items())
    measured = next((r for r in (report.results if report else ()) if r.encoder == chosen.encoder), None)
    speed = f", {measured.ms_per_frame:.1f} ms/frame" if measured and measured.ms_per_frame else ""
    log.info("%s: vcodec=auto chose %s (%dx%d %s, %d fps%s)%s", camera or "camera", chosen.encoder, width, height,
             config.pix_fmt, fps, speed, f"; not chosen: {why_not}" if why_not else "")
    return (chosen, *working[1:], *(() if chosen is last else (last,)))

