"""Does the capture loop keep its 30 Hz beat while SVT-AV1 encodes next to it?

When the process may raise priorities (root, or CAP_SYS_NICE), SVT-AV1 starts its worker threads
as SCHED_FIFO 99. Those threads then pre-empt everything else that runs under the normal
scheduler, including a robot's capture loop. This script runs a 30 Hz capture loop in the main
thread while N camera encoders (libsvtav1 through PyAV) run next to it, in four ways:

  thread-raw        one Python thread per camera, codec opened as is
  thread-demoted    same, the thread calls streamrec.encode._priority.demote_current_thread() first
  process-raw       one spawned process per camera; frames go through a ring of shared-memory
                    slots, slot indices through a pipe
  process-demoted   same, the child's main thread calls demote_current_thread() first

Input is the first 150 frames of the ALOHA insertion footage (/work/shared/footage), decoded
once at startup and looped. Each tick, for each camera, the loop copies the frame into a
preallocated "driver" buffer (what a camera driver read would do) and hands it to that camera's
encoder, which holds at most 30 frames; when full the frame is dropped, never waited for.

Measured per variant, after 1 s of warm-up:
  handoff_ms       time of one add_frame analogue: take a private copy of the frame and enqueue it
  driver_copy_ms   time of the np.copyto into the driver buffer before it: pure memory work that
                   needs no lock, so it shows CPU pre-emption apart from GIL waits
  tick_work_ms     all the work of one tick (driver copies and hand-offs for every camera)
  lateness_ms      actual wake-up time minus the scheduled tick time; late_ticks_over_5ms counts
                   ticks late by more than 5 ms, missed_ticks counts ticks skipped because the
                   loop woke after the following tick was already due
  sleep_probe_ms   overshoot of time.sleep(0.001), taken right after each tick's work: how long
                   the capture thread waits for a CPU once it is runnable
  cameras          frames offered / dropped / encoded per camera (over warm-up + measurement)
  cpu_percent      this process plus the encoder processes, 100 = one core
  machine_cpu_percent  the whole machine over the same window (includes steal_percent): the
                   excess over cpu_percent is other work on the machine, i.e. noise
  threads          scheduling policy / rt priority / nice of every thread involved, at the
                   sample (taken once per second) with the most SCHED_FIFO/RR threads

Run (from anywhere; the results go to benchmarks/results/encoder_priority-<root|nocapnice>.json):

  /work/main/.venv/bin/python /work/main/benchmarks/encoder_priority.py
  capsh --drop=cap_sys_nice -- -c '/work/main/.venv/bin/python /work/main/benchmarks/encoder_priority.py'

Options: --seconds (per variant, default 15), --cameras (default 3), --variants (comma list).
A run with a subset of the variants writes encoder_priority-<label>-<variants>.json instead, so
re-running one variant does not overwrite the full table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import struct
import sys
import threading
import time
from collections import Counter
from fractions import Fraction
from multiprocessing import shared_memory
from pathlib import Path

# SVT-AV1 prints its whole configuration at info level for every encoder it opens; keep
# warnings (they include "Failed to set thread priority"). Set before the library loads, and
# spawned children inherit it through the environment.
os.environ.setdefault("SVT_LOG", "2")

import av  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from streamrec.encode._priority import demote_current_thread  # noqa: E402

FPS = 30
PERIOD = 1.0 / FPS
HEIGHT, WIDTH = 480, 640
FRAME_SHAPE = (HEIGHT, WIDTH, 3)
QUEUE_FRAMES = 30  # frames an encoder may hold before the capture loop drops new ones
WARMUP_S = 1.0
LATE_MS = 5.0
FOOTAGE_DIR = Path("/work/shared/footage/aloha_insertion")
FOOTAGE_CAMERAS = ("top", "angle", "left_wrist")
FOOTAGE_FRAMES = 150
RESULTS_DIR = Path(__file__).resolve().parent / "results"
VARIANTS = ("thread-raw", "thread-demoted", "process-raw", "process-demoted")
POLICY_NAMES = {0: "OTHER", 1: "FIFO", 2: "RR", 3: "BATCH", 5: "IDLE", 6: "DEADLINE"}
CAP_SYS_NICE = 23
SLOT_MSG = struct.Struct("<i")  # one slot index per pipe message
STOP = -1  # slot index that tells an encoder process to flush and exit
JOIN_TIMEOUT_S = 60.0  # generous: a worker may still have 30 queued frames to encode on shutdown


# ----------------------------------------------------------------------------------------------
# Encoder side (runs in a worker thread or in a worker process)


def open_encoder() -> av.CodecContext:
    ctx = av.CodecContext.create("libsvtav1", "w")
    ctx.width = WIDTH
    ctx.height = HEIGHT
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, FPS)
    ctx.gop_size = 2
    ctx.max_b_frames = 0
    ctx.options = {"crf": "30", "preset": "12", "svtav1-params": "hierarchical-levels=2:lookahead=0"}
    # Open now rather than on the first frame: SVT-AV1 creates all its threads here, and they
    # must be created by the (possibly demoted) worker thread, before measuring starts.
    ctx.open()
    return ctx


class Encoder:
    """One camera's codec plus counters."""

    def __init__(self) -> None:
        self.ctx = open_encoder()
        self.frames_in = 0
        self.packets = 0
        self.bytes = 0

    def encode(self, rgb: av.VideoFrame) -> None:
        rgb.pts = self.frames_in
        self.frames_in += 1
        self._count(self.ctx.encode(rgb))

    def flush(self) -> None:
        self._count(self.ctx.encode(None))

    def _count(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self.packets += 1
            self.bytes += packet.size

    def stats(self) -> dict:
        return {"frames_in": self.frames_in, "packets": self.packets, "bytes": self.bytes}


def thread_worker(frames: queue.Queue, demote: bool, ready: threading.Event, result: dict) -> None:
    try:
        if demote:
            demote_current_thread()
        encoder = Encoder()
        ready.set()
        while (array := frames.get()) is not None:
            # The RGB -> AVFrame conversion happens here, not in the capture loop; PyAV converts
            # to yuv420p inside encode().
            encoder.encode(av.VideoFrame.from_ndarray(array, format="rgb24"))
        encoder.flush()
        result.update(encoder.stats())
    except BaseException as exc:  # reported by the main thread, which would otherwise just time out
        result["error"] = repr(exc)
        raise


def process_worker(shm_name: str, n_slots: int, slot_rx, free_tx, demote: bool, ready, results) -> None:
    """Main function of an encoder process (spawned: imports this module fresh)."""
    if demote:
        demote_current_thread()  # this is the child's main thread; SVT threads inherit from it
    shm = shared_memory.SharedMemory(name=shm_name)
    try:
        slots = np.ndarray((n_slots, *FRAME_SHAPE), dtype=np.uint8, buffer=shm.buf)
        encoder = Encoder()
        ready.set()
        while (slot := SLOT_MSG.unpack(slot_rx.recv_bytes())[0]) != STOP:
            # from_ndarray copies the pixels into the AVFrame, so the slot can go back right away.
            rgb = av.VideoFrame.from_ndarray(slots[slot], format="rgb24")
            free_tx.send_bytes(SLOT_MSG.pack(slot))
            encoder.encode(rgb)
        encoder.flush()
        results.put(encoder.stats())
        del slots  # release the exported buffer before closing the mapping
    finally:
        shm.close()


# ----------------------------------------------------------------------------------------------
# Capture side: one handle per camera, with the same offer() interface for both designs


class ThreadCamera:
    def __init__(self, name: str, demote: bool) -> None:
        self.name = name
        self.frames: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.ready = threading.Event()
        self.result: dict = {}
        self.thread = threading.Thread(
            target=thread_worker, args=(self.frames, demote, self.ready, self.result),
            name=f"enc-{name}", daemon=True)
        self.thread.start()
        self.pids: list[int] = []  # encoder runs inside this process

    def offer(self, frame: np.ndarray) -> bool:
        # The capture loop is the only producer, so "not full" now means put_nowait succeeds; the
        # check avoids copying a frame that would be dropped anyway.
        if self.frames.full():
            return False
        self.frames.put_nowait(frame.copy())
        return True

    def close(self) -> dict:
        self.frames.put(None)  # may wait for room: the capture loop has stopped by now
        self.thread.join(JOIN_TIMEOUT_S)
        if self.thread.is_alive():
            return {"error": "encoder thread did not finish in time"}
        return dict(self.result)


class ProcessCamera:
    def __init__(self, name: str, demote: bool, ctx: mp.context.SpawnContext) -> None:
        self.name = name
        # One slot per frame the encoder may hold, so "no free slot" is exactly "queue full".
        self.n_slots = QUEUE_FRAMES
        self.shm = shared_memory.SharedMemory(create=True, size=self.n_slots * int(np.prod(FRAME_SHAPE)))
        self.slots = np.ndarray((self.n_slots, *FRAME_SHAPE), dtype=np.uint8, buffer=self.shm.buf)
        self.free = list(range(self.n_slots))
        # Plain pipes, not mp.Queue: send_bytes is one write() in this thread, while mp.Queue.put
        # pickles in a feeder thread that would compete with the capture loop for the GIL. At most
        # n_slots small messages are ever in flight, far below the pipe buffer, so writes never block.
        slot_rx, self.slot_tx = ctx.Pipe(duplex=False)
        self.free_rx, free_tx = ctx.Pipe(duplex=False)
        self.ready = ctx.Event()
        self.results = ctx.Queue()
        self.proc = ctx.Process(
            target=process_worker, name=f"enc-{name}",
            args=(self.shm.name, self.n_slots, slot_rx, free_tx, demote, self.ready, self.results))
        self.proc.start()
        slot_rx.close()  # the child has its own copies now
        free_tx.close()
        self.pids = [self.proc.pid]

    def offer(self, frame: np.ndarray) -> bool:
        # Collect the slots the encoder has finished with (poll() is a zero-timeout select).
        while self.free_rx.poll():
            self.free.append(SLOT_MSG.unpack(self.free_rx.recv_bytes())[0])
        if not self.free:
            return False
        slot = self.free.pop()
        np.copyto(self.slots[slot], frame)
        self.slot_tx.send_bytes(SLOT_MSG.pack(slot))
        return True

    def close(self) -> dict:
        self.slot_tx.send_bytes(SLOT_MSG.pack(STOP))
        try:
            result = self.results.get(timeout=JOIN_TIMEOUT_S)
        except queue.Empty:
            result = {"error": f"encoder process ended with exit code {self.proc.exitcode}"}
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        del self.slots
        self.shm.close()
        self.shm.unlink()
        return result


# ----------------------------------------------------------------------------------------------
# Measurements


def read_tasks(pid: int | str) -> list[tuple[int, int, int]]:
    """(policy, rt_priority, nice) of every thread of `pid`, from /proc/<pid>/task/*/stat.

    Fields are numbered as in proc(5): 19 nice, 40 rt_priority, 41 policy. The command name
    (field 2) may contain spaces and parentheses, so split after its closing parenthesis; the
    list then starts at field 3.
    """
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # thread ended between listing and reading
        out.append((int(fields[38]), int(fields[37]), int(fields[16])))
    return out


def sched_sample(pids: list[int]) -> Counter:
    """Threads of this process and of `pids`, counted by (owner, policy, rt priority, nice)."""
    counts: Counter = Counter()
    for owner, pid in [("main", os.getpid()), *(("child", p) for p in pids)]:
        for policy, rtprio, nice in read_tasks(pid):
            counts[(owner, policy, rtprio, nice)] += 1
    return counts


def n_realtime(counts: Counter) -> int:
    return sum(n for (_, policy, _, _), n in counts.items() if policy in (1, 2))


def describe(counts: Counter) -> dict[str, int]:
    return {f"{owner} {POLICY_NAMES.get(policy, policy)} rtprio={rtprio} nice={nice}": n
            for (owner, policy, rtprio, nice), n in sorted(counts.items())}


def summary_ms(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"n": 0}
    ms = np.asarray(seconds) * 1e3
    return {"n": len(ms), "p50": round(float(np.percentile(ms, 50)), 3),
            "p99": round(float(np.percentile(ms, 99)), 3), "max": round(float(ms.max()), 3)}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of this process (all its threads) and the given live children."""
    total = 0.0
    for proc in [psutil.Process(), *(psutil.Process(p) for p in pids)]:
        times = proc.cpu_times()
        total += times.user + times.system
    return total


def machine_busy_seconds(times) -> float:
    """Busy CPU time of the whole machine (all processes, and time the hypervisor stole).

    Compared with cpu_percent it shows how much other work shared the cores during a variant.
    guest time is already part of user time, so it is not added again.
    """
    return times.user + times.nice + times.system + times.irq + times.softirq + times.steal


def has_cap_sys_nice() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_NICE & 1)
    return False


# ----------------------------------------------------------------------------------------------
# The benchmark


def load_footage(n_cameras: int) -> list[np.ndarray]:
    """(FOOTAGE_FRAMES, 480, 640, 3) uint8 per camera; extra cameras reuse the three clips."""
    clips = {}
    for name in FOOTAGE_CAMERAS[:n_cameras]:
        with av.open(str(FOOTAGE_DIR / f"{name}.mkv")) as container:
            frames = []
            for frame in container.decode(container.streams.video[0]):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == FOOTAGE_FRAMES:
                    break
        clips[name] = np.stack(frames)
    return [clips[FOOTAGE_CAMERAS[i % len(FOOTAGE_CAMERAS)]] for i in range(n_cameras)]


def run_variant(variant: str, footage: list[np.ndarray], seconds: float) -> dict:
    demote = variant.endswith("-demoted")
    names = [f"cam{i}" for i in range(len(footage))]
    spawn = mp.get_context("spawn")
    t_start = time.monotonic()
    if variant.startswith("thread"):
        cams = [ThreadCamera(n, demote) for n in names]
    else:
        cams = [ProcessCamera(n, demote, spawn) for n in names]
    for cam in cams:
        if not cam.ready.wait(120):
            raise RuntimeError(f"{variant}: encoder {cam.name} did not start")
    startup_s = time.monotonic() - t_start
    child_pids = [p for cam in cams for p in cam.pids]

    # The capture loop's "driver" buffers: one per camera, refilled every tick.
    driver = [np.empty(FRAME_SHAPE, np.uint8) for _ in cams]
    offered = [0] * len(cams)
    dropped = [0] * len(cams)
    handoff, driver_copy, tick_work, lateness, probe, sample_cost = [], [], [], [], [], []
    late_ticks = missed_ticks = 0
    first = sched_sample(child_pids)
    worst = first

    begin = time.monotonic() + PERIOD
    measure_from = begin + WARMUP_S
    end = measure_from + seconds
    next_tick = begin
    tick = 0
    cpu0 = wall0 = sys0 = None
    while next_tick < end:
        time.sleep(max(0.0, next_tick - time.monotonic()))
        woke = time.monotonic()
        measuring = next_tick >= measure_from
        if measuring and cpu0 is None:
            cpu0, wall0, sys0 = cpu_seconds(child_pids), woke, psutil.cpu_times()

        work_start = time.monotonic()
        for i, cam in enumerate(cams):
            t_copy = time.monotonic()
            np.copyto(driver[i], footage[i][tick % FOOTAGE_FRAMES])  # the camera driver's copy
            t0 = time.monotonic()
            accepted = cam.offer(driver[i])
            t1 = time.monotonic()
            offered[i] += 1
            dropped[i] += not accepted
            if measuring:
                driver_copy.append(t0 - t_copy)
                handoff.append(t1 - t0)
        work_end = time.monotonic()
        time.sleep(0.001)
        probe_end = time.monotonic()

        if measuring:
            lateness.append(woke - next_tick)
            late_ticks += (woke - next_tick) * 1e3 > LATE_MS
            tick_work.append(work_end - work_start)
            probe.append(probe_end - work_end - 0.001)
            # Scheduling state once a second, after the probe so it does not delay it. Reading
            # ~150 stat files costs a few ms (reported as sched_sample_ms), well inside the slack.
            if tick % FPS == 0:
                counts = sched_sample(child_pids)
                if n_realtime(counts) > n_realtime(worst):
                    worst = counts
                sample_cost.append(time.monotonic() - probe_end)

        # Next tick on the fixed 30 Hz grid; ticks whose time has already passed are skipped
        # (and counted) instead of being run back to back to catch up.
        tick += 1
        next_tick += PERIOD
        now = time.monotonic()
        while next_tick + PERIOD <= now:
            next_tick += PERIOD
            tick += 1
            missed_ticks += measuring

    wall = time.monotonic() - wall0
    cpu = cpu_seconds(child_pids) - cpu0
    sys1 = psutil.cpu_times()
    machine_busy = machine_busy_seconds(sys1) - machine_busy_seconds(sys0)

    t_close = time.monotonic()
    results = [cam.close() for cam in cams]
    shutdown_s = time.monotonic() - t_close

    cameras = {}
    for cam, off, drop, res in zip(cams, offered, dropped, results, strict=True):
        cameras[cam.name] = {"offered": off, "dropped": drop, "encoded": res.get("packets"), **res}
    return {
        "handoff_ms": summary_ms(handoff),
        "driver_copy_ms": summary_ms(driver_copy),
        "tick_work_ms": summary_ms(tick_work),
        "lateness_ms": summary_ms(lateness),
        "late_ticks_over_5ms": late_ticks,
        "missed_ticks": missed_ticks,
        "sleep_probe_ms": summary_ms(probe),
        "cameras": cameras,
        "cpu_percent": round(100 * cpu / wall, 1),
        "machine_cpu_percent": round(100 * machine_busy / wall, 1),
        "steal_percent": round(100 * (sys1.steal - sys0.steal) / wall, 1),
        "max_realtime_threads": n_realtime(worst),
        "threads": describe(worst),
        "threads_at_start": describe(first) if first != worst else "same",
        "sched_sample_ms": summary_ms(sample_cost),
        "startup_s": round(startup_s, 2),
        "shutdown_s": round(shutdown_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per variant")
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma list of " + ", ".join(VARIANTS))
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")

    cap = has_cap_sys_nice()
    footage = load_footage(args.cameras)
    report: dict = {"metadata": {
        "cap_sys_nice": cap,
        "euid": os.geteuid(),
        "nproc": os.cpu_count(),
        "av_version": av.__version__,
        "python": sys.version.split()[0],
        "capture_thread": {"policy": POLICY_NAMES.get(os.sched_getscheduler(0)),
                           "nice": os.getpriority(os.PRIO_PROCESS, threading.get_native_id())},
        "seconds": args.seconds,
        "warmup_s": WARMUP_S,
        "cameras": args.cameras,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "footage": f"{FOOTAGE_DIR}/{{{','.join(FOOTAGE_CAMERAS)}}}.mkv, first {FOOTAGE_FRAMES} frames",
    }}
    for variant in variants:
        print(f"running {variant} ...", file=sys.stderr, flush=True)
        report[variant] = run_variant(variant, footage, args.seconds)
        time.sleep(2)  # let the last encoder's threads and pages go before the next variant

    print(json.dumps(report, indent=2))
    label = "root" if cap else "nocapnice"
    suffix = "" if variants == list(VARIANTS) else "-" + "+".join(variants)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"encoder_priority-{label}{suffix}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
