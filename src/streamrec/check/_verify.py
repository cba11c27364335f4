"""`verify()`: check a dataset on disk the way the LeRobot loader will use it.

Every check reads the files themselves: the parquet tables for rows and metadata, and every MP4
decoded once from start to end (a file that stops early is the most common damage after a
crash or a cut-off copy). A problem becomes a `Finding` with a stable `code`; `verify` never
raises for a damaged dataset, so the report can list everything that is wrong at once.

Video timing is checked against the loader's rule: row r of episode e is the frame at
`from_timestamp(e) + r / fps`, found within `TOLERANCE_S`; so each episode needs exactly
`length` frames on the 1/fps grid inside `[from_timestamp, to_timestamp)`.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..dataset._depth import is_depth_info
from ..dataset._layout import WORK_DIR
from ..dataset._reader import DatasetReader, Episode, short_list
from ..dataset._tables import as_matrix
from ._depth import DepthScan, check_depth_video
from ._report import EpisodeVideoCheck, VerifyReport
from ._video import DecodedVideo, codec_id, decode, grid, seconds, unmatched

log = logging.getLogger("streamrec.verify")

TOLERANCE_S = 1e-4
"""How far a frame's pts may be from where a row expects it; the LeRobot loader's default `tolerance_s`."""
DROP_OK_PCT = 2.0
"""Dropped frames up to this share of an episode are normal transient spikes."""
DROP_OVERLOAD_PCT = 5.0
"""From this share of dropped frames on, the machine could not keep up with encoding."""
OVERLOAD_REMEDIES = (
    "use fewer encoder threads (--dataset.encoder_threads)",
    "encode with H.264 (--dataset.camera_encoder.vcodec=h264)",
    "use hardware encoding if the machine has it",
    "encode after each episode instead of while recording (--dataset.streaming_encoding=false)",
)
FAST_FEED_RATIO = 0.5
"""Rows that came in less than this share of real time (length / fps) were fed by a loop that did not
wait for each tick: drops then say nothing about the machine."""
CAPTURE_RATE_REL = 0.05
"""The median capture interval may differ from 1/fps by this fraction before it is reported."""
CAPTURE_JITTER_PERIODS = 1.5
"""A p99 capture interval above this many frame periods is reported as jitter."""
CAMERA_SKEW_PERIODS = 0.5
"""A p99 spread of one row's capture times across cameras above this many frame periods is reported."""


def verify(root: str | Path) -> VerifyReport:
    """Check a LeRobot v3.0 dataset: metadata, data rows, every MP4 (decoded), drops and timing.

    Each MP4 is decoded once, whole, so the time taken grows with the total video length.

    Args:
        root: The dataset folder (the one holding `meta/`).

    Returns:
        A `VerifyReport`; `report.healthy` is False if any error was found, and
        `report.is_dataset` is False if `root` has no readable `meta/info.json`.
    """
    t0 = time.perf_counter()
    checker = _Checker(DatasetReader(root))
    checker.run()
    return checker.report(time.perf_counter() - t0)


class _Checker:
    """Runs the checks in order on what the reader read, adding to its findings; later checks skip
    what earlier ones found broken."""

    def __init__(self, reader: DatasetReader) -> None:
        self.reader = reader
        self.root = reader.root
        self.layout = reader.layout
        self.findings = reader.findings
        self.error, self.warning, self.note = self.findings.error, self.findings.warning, self.findings.note
        self.rel = self.layout.rel
        self.info = reader.info or {}
        self.fps: int | None = None
        self.features: dict = {}
        self.cameras: tuple[str, ...] = ()
        self.episodes: list[Episode] = []
        self.tasks: list[str] | None = None
        self.rows = None
        self.videos: dict[str, DecodedVideo] = {}
        self.checks: list[EpisodeVideoCheck] = []
        self._capture_stats: dict[tuple[int, str], tuple[float, float]] = {}
        self._skew_stats: dict[int, tuple[float, float]] = {}
        self._frames: dict[tuple[int, str], int] = {}

    def report(self, elapsed_s: float) -> VerifyReport:
        findings = sorted(self.findings, key=lambda f: -f.severity.rank)  # stable: keeps found order
        return VerifyReport(
            root=self.root, is_dataset=self.reader.is_dataset, fps=self.fps, episodes=len(self.episodes),
            frames=0 if self.rows is None else len(self.rows.index), cameras=self.cameras,
            rows=tuple(self._with_status(c) for c in self.checks), findings=tuple(findings), elapsed_s=elapsed_s)

    def _with_status(self, check: EpisodeVideoCheck) -> EpisodeVideoCheck:
        worst = -1
        for f in self.findings:
            if f.camera not in (None, check.camera):
                continue
            if f.episode == check.episode or (f.episode is None and f.file is not None
                                              and f.file in (check.video_file, check.data_file)):
                worst = max(worst, f.severity.rank)
        return replace(check, status="error" if worst == 2 else "warning" if worst == 1 else "ok")

    # -- the checks, in order -------------------------------------------------------------------

    def run(self) -> None:
        reader = self.reader
        if not reader.is_dataset:
            return
        if self.layout.work.exists() and not self._work_folder():
            return
        if self.layout.finished_work.exists():
            self.warning("work_leftover", f"{self.layout.rel(self.layout.finished_work)}/ is the scratch space of a "
                         "finished recording whose removal was cut short; the dataset is complete. `streamrec repair "
                         f"{self.root}` removes it", file=self.layout.rel(self.layout.finished_work))
        self.fps, self.features, self.cameras = reader.fps, reader.features, reader.cameras
        self.tasks = reader.tasks
        self.episodes = reader.episodes
        self.rows = reader.rows
        self._check_totals()
        self._check_episode_rows()
        if self.fps is not None:
            self._check_videos()
            self._check_capture_times()
        self._check_drops()
        self._check_finite()
        self._build_checks()

    def _work_folder(self) -> bool:
        """Report a recording in progress or interrupted; False when nothing else can be checked."""
        reader = self.reader
        journaled = reader.journaled_episodes()
        who = reader.recorded_by()
        if who is not None:
            self.error("recording", f"the dataset is being recorded right now by {who}: {journaled} episode(s) "
                       "are saved so far and its tables are written when it finalizes. Check it once the "
                       "recording has ended.", file=WORK_DIR)
            return False
        assembled = any(self.root.glob("meta/episodes/*/*.parquet"))
        state = ("the meta files were written, so finalize() stopped near its end" if assembled else
                 "the meta, data and video files are incomplete, so nothing else was checked")
        self.error("interrupted", f"the recording was interrupted: {WORK_DIR}/ is still in the dataset "
                   f"({journaled} saved episode(s) journaled there); {state}. Recover it with "
                   f"`streamrec repair {self.root}` (it keeps every saved episode).", file=WORK_DIR)
        # finalize() writes tasks, data and episodes files only at the end: anything else reported
        # now would be a consequence of the interruption, not news.
        return assembled

    def _check_totals(self) -> None:
        info = self.info
        where = {"file": "meta/info.json"}
        if self.reader.episodes_complete and info.get("total_episodes") != len(self.episodes):
            self.error("total_episodes_mismatch", f"info.json total_episodes = {info.get('total_episodes')!r}, "
                       f"but meta/episodes lists {len(self.episodes)}", **where)
        # Rows when they could be read; otherwise the lengths in meta/episodes (a mismatch between
        # those two is reported per episode as rows_mismatch).
        if self.rows is not None:
            frames, source = len(self.rows.index), "the data files hold"
        elif self.reader.episodes_complete:
            frames, source = sum(ep.length for ep in self.episodes), "the episode lengths in meta/episodes sum to"
        else:
            frames = None
        if frames is not None and info.get("total_frames") != frames:
            self.error("total_frames_mismatch", f"info.json total_frames = {info.get('total_frames')!r}, but "
                       f"{source} {frames}", **where)
        if self.tasks is not None and info.get("total_tasks") != len(self.tasks):
            self.error("total_tasks_mismatch", f"info.json total_tasks = {info.get('total_tasks')!r}, but "
                       f"meta/tasks.parquet has {len(self.tasks)} task(s)", **where)

    def _check_episode_rows(self) -> None:
        rows = self.rows
        if rows is not None:
            n = len(rows.index)
            bad = np.flatnonzero(rows.index != np.arange(n))
            if bad.size:
                p = int(bad[0])
                self.error("index_column", f"data column 'index' must count 0..{n - 1} through the data files; "
                           f"row {p} ({rows.files[rows.file_no[p]]}) has index {rows.index[p]} "
                           f"({bad.size} row(s) differ)", file=rows.files[rows.file_no[p]])
            if self.tasks is not None and n:
                bad = np.flatnonzero((rows.task_index < 0) | (rows.task_index >= len(self.tasks)))
                if bad.size:
                    p = int(bad[0])
                    self.error("task_index_range", f"{bad.size} data row(s) have a task_index outside "
                               f"0..{len(self.tasks) - 1} (first: row {p}, task_index {rows.task_index[p]})",
                               episode=int(rows.episode_index[p]))
            known = {ep.episode_index for ep in self.episodes}
            stray = sorted(set(np.unique(rows.episode_index).tolist()) - known)
            if stray:
                self.error("rows_without_episode", f"the data files have rows of episode(s) {short_list(stray)} "
                           "that meta/episodes does not list")
        expected_from = 0
        for ep in self.episodes:
            e = ep.index
            span = ep.dataset_to_index - ep.dataset_from_index
            if ep.dataset_from_index != expected_from or span != ep.length:
                self.error("index_range", f"episode {e} dataset_from_index..to_index = "
                           f"{ep.dataset_from_index}..{ep.dataset_to_index}: expected {expected_from}.."
                           f"{expected_from + ep.length} (contiguous, length {ep.length})", episode=e)
            expected_from = ep.dataset_to_index
            if rows is None:
                continue
            pos = rows.positions(ep.episode_index)
            if len(pos) != ep.length:
                self.error("rows_mismatch", f"episode {e} has {len(pos)} data row(s), but its length is "
                           f"{ep.length}", episode=e, file=ep.data_file)
            if len(pos) and (pos[0] != ep.dataset_from_index or pos[-1] != ep.dataset_to_index - 1
                             or len(pos) != pos[-1] - pos[0] + 1):
                self.error("index_range", f"episode {e}'s rows are at positions {pos[0]}..{pos[-1] + 1} of the "
                           f"data files, but dataset_from_index..to_index say {ep.dataset_from_index}.."
                           f"{ep.dataset_to_index}", episode=e)
            in_files = {rows.files[i] for i in np.unique(rows.file_no[pos])}
            if len(pos) and in_files != {ep.data_file}:
                self.error("data_location", f"episode {e}'s rows are in {sorted(in_files)}, but meta/episodes "
                           f"points to {ep.data_file}", episode=e, file=ep.data_file)
            frame_index = rows.frame_index[pos]
            bad = np.flatnonzero(frame_index != np.arange(len(pos)))
            if bad.size:
                self.error("frame_index", f"episode {e}: frame_index must be 0..{len(pos) - 1} in row order; "
                           f"row {bad[0]} has {frame_index[bad[0]]} ({bad.size} row(s) differ)", episode=e)
            elif self.fps is not None and len(pos):
                self._check_timestamps(e, rows.timestamp[pos], frame_index)

    def _check_timestamps(self, e: int, timestamp: np.ndarray, frame_index: np.ndarray) -> None:
        expected = (frame_index / self.fps).astype(np.float32)
        off = np.abs(timestamp.astype(np.float64) - expected.astype(np.float64))
        worst = int(np.argmax(off))
        if off[worst] > TOLERANCE_S:
            self.error("timestamp_grid", f"episode {e}: data timestamp must be frame_index / fps; row {worst} has "
                       f"{float(timestamp[worst]):.6f} s, expected {float(expected[worst]):.6f} s "
                       f"({int((off > TOLERANCE_S).sum())} row(s) off by more than {TOLERANCE_S:g} s)", episode=e)
        elif off[worst] > 0:
            self.note("timestamp_inexact", f"episode {e}: {int((off > 0).sum())} data timestamp(s) differ from "
                      f"float32(frame_index / fps) by up to {off[worst]:.2g} s (within the loader's "
                      f"{TOLERANCE_S:g} s tolerance)", episode=e)

    # -- video ----------------------------------------------------------------------------------

    def _check_videos(self) -> None:
        referenced: dict[str, list[tuple[Episode, str]]] = {}
        for ep in self.episodes:
            for k, v in ep.videos.items():
                referenced.setdefault(v.file, []).append((ep, k))
        on_disk = {self.rel(p) for k in self.cameras for p in self.reader.files("videos", k)}
        for name in sorted(on_disk - set(referenced)):
            self.warning("video_file_unreferenced", f"{name} is not referenced by any episode", file=name)
        present = []
        for name, uses in referenced.items():
            camera = uses[0][1]
            if (self.root / name).is_file():
                present.append(name)
            else:
                self.error("video_file_missing", f"{name} does not exist; it holds episode(s) "
                           f"{short_list([ep.index for ep, _ in uses])} of {camera}", camera=camera, file=name)
        # A depth camera's files are also checked against its info block as they are decoded (see _depth).
        depth = {name: DepthScan() for name in present if is_depth_info(self._info_of(referenced[name][0][1]))}
        # Decoding dominates the run time, and PyAV releases the GIL while decoding.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="streamrec-verify") as pool:
            for name, video in zip(present, pool.map(lambda n: decode(self.root / n, n, depth.get(n)), present),
                                   strict=True):
                self.videos[name] = video
                log.debug("%s: %d frame(s) decoded, time base %s%s", name, 0 if video.pts is None else len(video.pts),
                          video.time_base, f", error: {video.error}" if video.error else "")
        for name in present:
            video = self.videos[name]
            uses = referenced[name]
            camera = uses[0][1]
            if self._check_video_file(video, camera):
                self._check_file_episodes(video, camera, [ep for ep, _ in uses])
            if name in depth and video.opened:
                check_depth_video(self.findings, name, camera, self._info_of(camera), video.codec_name, depth[name])

    def _info_of(self, camera: str) -> dict | None:
        info = self.features.get(camera, {}).get("info")
        return info if isinstance(info, dict) else None

    def _check_video_file(self, video: DecodedVideo, camera: str) -> bool:
        """File-level checks; returns whether the frames are good enough for per-episode checks."""
        where = {"camera": camera, "file": video.path}
        if video.truncated:
            self.error("video_truncated", f"{video.path} is truncated: {video.truncated}", **where)
        if not video.opened:
            if not video.truncated:
                self.error("video_unreadable", f"{video.path} cannot be opened as a video: {video.error}", **where)
            return False
        if video.error:
            self.error("video_decode_error", f"{video.path} stops decoding after {video.decoded_before_error} "
                       f"frame(s): {video.error}", **where)
        spec = self.features.get(camera, {})
        shape = spec.get("shape")
        if isinstance(shape, list) and len(shape) == 3 and [video.height, video.width] != shape[:2]:
            self.error("video_shape", f"{video.path} is {video.width}x{video.height} (width x height), but "
                       f"info.json gives {camera} shape {shape} (height, width, channels)", **where)
        stated = (spec.get("info") or {}).get("video.codec")
        by_file = (spec.get("info") or {}).get("video.codec_by_file")
        if isinstance(by_file, dict):  # a camera whose encoder was replaced mid-recording (streamrec's fallback)
            stated = by_file.get(video.path.removeprefix(f"videos/{camera}/"), stated)
        if isinstance(stated, str) and video.codec_id is not None and codec_id(stated) != video.codec_id:
            self.warning("video_codec", f"{video.path} is {video.codec_name}, but info.json says "
                         f"video.codec = {stated!r}", **where)
        if video.missing_pts:
            self.error("pts_off_grid", f"{video.path}: {video.missing_pts} decoded frame(s) have no pts; the "
                       "loader cannot place them", **where)
        pts = video.pts
        if pts is None or not len(pts):
            self.error("video_empty", f"{video.path} has no decodable video frames", **where)
            return False
        k, rem, den = grid(pts, video.time_base, self.fps)
        off_s = rem.astype(np.float64) / (float(den) * self.fps)
        bad = np.flatnonzero(np.abs(off_s) > TOLERANCE_S)
        if bad.size:
            i = int(bad[0])
            self.error("pts_off_grid", f"{video.path}: {bad.size} of {len(pts)} frame(s) are more than "
                       f"{TOLERANCE_S:g} s off the 1/{self.fps} s grid (first: pts {pts[i]} = "
                       f"{seconds(pts[i], video.time_base):.6f} s, {off_s[i]:+.6f} s off); the loader will "
                       "raise FrameTimestampError for them", **where)
        inexact = int(np.count_nonzero(rem)) - bad.size
        if inexact:
            self.note("pts_inexact", f"{video.path}: {inexact} frame pts are not exactly on the 1/{self.fps} s grid "
                      f"(time base {video.time_base}) but within {TOLERANCE_S:g} s", **where)
        unique, counts = np.unique(k, return_counts=True)
        if (counts > 1).any():
            dup = unique[counts > 1]
            self.error("pts_duplicate", f"{video.path}: {len(dup)} frame slot(s) hold more than one frame (first: "
                       f"{dup[0] / self.fps:.4f} s)", **where)
        if video.header_frames and len(pts) < video.header_frames and not video.truncated:
            self.error("video_truncated", f"{video.path} is truncated: its index lists {video.header_frames} "
                       f"frames, only {len(pts)} could be decoded", **where)
        return True

    def _check_file_episodes(self, video: DecodedVideo, camera: str, episodes: list[Episode]) -> None:
        fps = self.fps
        times = np.sort(video.pts.astype(np.float64) * float(video.time_base))
        file_end = float(times[-1]) + 1.0 / fps
        previous: Episode | None = None
        previous_end = 0.0
        for ep in sorted(episodes, key=lambda ep: ep.videos[camera].from_s):
            v = ep.videos[camera]
            where = {"episode": ep.index, "camera": camera, "file": video.path}
            if abs((v.to_s - v.from_s) - ep.length / fps) > TOLERANCE_S:
                self.error("video_span", f"episode {ep.index}: to_timestamp - from_timestamp = {v.to_s:.6f} - "
                           f"{v.from_s:.6f} = {v.to_s - v.from_s:.6f} s, expected length / fps = "
                           f"{ep.length}/{fps} = {ep.length / fps:.6f} s", **where)
            before = f"episode {previous.index} ends" if previous else "the file starts"
            if v.from_s < previous_end - TOLERANCE_S:
                self.error("video_overlap", f"episode {ep.index} starts at {v.from_s:.6f} s in {video.path}, before "
                           f"{before} at {previous_end:.6f} s", **where)
            elif v.from_s > previous_end + TOLERANCE_S:
                gap = v.from_s - previous_end
                self.warning("video_gap", f"episode {ep.index} starts at {v.from_s:.6f} s in {video.path}, "
                             f"{gap:.6f} s (~{gap * fps:.1f} frames) after {before}; those frames belong to no "
                             "episode", **where)
            if v.to_s > previous_end:
                previous, previous_end = ep, v.to_s
            lo, hi = np.searchsorted(times, [v.from_s - TOLERANCE_S, v.to_s - TOLERANCE_S])
            frames = int(hi - lo)
            self._frames[(ep.index, camera)] = frames
            if frames != ep.length:
                self.error("frame_count_mismatch", f"episode {ep.index}: {video.path} has {frames} frame(s) in "
                           f"[{v.from_s:.4f}, {v.to_s:.4f}) s, but the episode has {ep.length} rows", **where)
            targets = v.from_s + np.arange(ep.length) / fps
            missing = unmatched(times, targets, TOLERANCE_S)
            if missing.size:
                r = int(missing[0])
                self.error("frame_lookup", f"episode {ep.index}: for {missing.size} of {ep.length} row(s) there is no "
                           f"frame within {TOLERANCE_S:g} s of from_timestamp + timestamp (first: row {r} at "
                           f"{targets[r]:.6f} s); the loader raises FrameTimestampError there", **where)
        last = f"episode {previous.index}" if previous else "its last episode"
        if previous_end > file_end + TOLERANCE_S:
            self.error("video_duration", f"{video.path} ends at {file_end:.4f} s ({len(times)} frames), but "
                       f"{last} ends at {previous_end:.4f} s", camera=camera, file=video.path)
        elif file_end > previous_end + TOLERANCE_S:
            extra = file_end - previous_end
            self.warning("video_unreferenced_frames", f"{video.path} runs to {file_end:.4f} s, {extra:.4f} s "
                         f"(~{extra * fps:.1f} frames) past the end of {last} at {previous_end:.4f} s",
                         camera=camera, file=video.path)

    # -- drops and capture timing ---------------------------------------------------------------

    def _check_drops(self) -> None:
        for ep in self.episodes:
            for k, v in ep.videos.items():
                if v.dropped is None or ep.length <= 0:
                    continue
                where = {"episode": ep.index, "camera": k}
                if not 0 <= v.dropped <= ep.length:
                    self.error("dropped_frames_invalid", f"episode {ep.index} {k}: dropped_frames = {v.dropped}, "
                               f"expected 0..{ep.length}", **where)
                    continue
                slots = v.dropped_slots
                if slots is not None and (len(slots) != v.dropped or list(slots) != sorted(set(slots))
                                          or any(not 0 <= r < ep.length for r in slots)):
                    self.error("dropped_frames_invalid", f"episode {ep.index} {k}: dropped_slots lists "
                               f"{len(slots)} row(s) ({short_list(slots)}) for dropped_frames = {v.dropped}; "
                               f"expected that many distinct rows in 0..{ep.length - 1}, in order", **where)
                if not v.dropped:
                    continue
                pct = 100.0 * v.dropped / ep.length
                counted = f"{v.dropped} of {ep.length} frames dropped ({pct:.1f} %)"
                if pct <= DROP_OK_PCT:
                    self.note("dropped_frames_ok", f"episode {ep.index} {k}: {counted}; ok: expected transient "
                              "spikes", **where)
                elif pct < DROP_OVERLOAD_PCT:
                    self.warning("dropped_frames", f"episode {ep.index} {k}: {counted}, more than the "
                                 f"{DROP_OK_PCT:g} % of transient spikes; the encoder is close to its limit "
                                 "(each dropped frame's slot repeats the previous frame)", **where)
                elif (fast := self._fed_fast(ep, k)) is not None:
                    self.error("system_overloaded", f"episode {ep.index} {k}: {counted}: {fast}, so the encoder "
                               "fell behind (each dropped frame's slot repeats the previous frame). A live capture "
                               "loop must wait for each tick (pace it to fps); to convert recorded data, use "
                               "queue_full_policy='block' (--dataset.queue_full_policy=block): add_frame then waits "
                               "for the encoder and nothing is dropped", **where)
                else:
                    self.error("system_overloaded", f"episode {ep.index} {k}: {counted}: system overloaded, "
                               "the encoder could not keep up (each dropped frame's slot repeats the previous "
                               f"frame). Remedies: {'; '.join(OVERLOAD_REMEDIES)}", **where)

    def _check_finite(self) -> None:
        """NaN or infinite values in the numeric data, and in the stats a policy is normalized with."""
        floats = [k for k, v in self.features.items() if str(v.get("dtype", "")).startswith("float")
                  and k not in ("timestamp",)]
        for name, table in self.reader.data_columns(floats):
            for feature in [c for c in floats if c in table.column_names]:
                values = as_matrix(table.column(feature))
                bad = ~np.isfinite(values).all(axis=1)
                if not bad.any():
                    continue
                episodes = table.column("episode_index").to_numpy()[bad]
                rows = table.column("frame_index").to_numpy()[bad] if "frame_index" in table.column_names else None
                for e in np.unique(episodes):
                    mine = np.flatnonzero(episodes == e)
                    row = None if rows is None else int(rows[mine[0]])
                    self.error("nonfinite_values", f"episode {int(e)}: {feature} holds NaN or infinite values in "
                               f"{mine.size} row(s) (first: row {row}); training code normalizing with its stats or "
                               "feeding them to a network gets NaN", episode=int(e), file=name, row=row)
        stats = self.reader.stats() or {}
        for feature, s in stats.items():
            bad = [stat for stat, value in s.items() if not np.isfinite(np.asarray(value, np.float64)).all()]
            if bad:
                self.error("stats_nonfinite", f"meta/stats.json: {feature} has NaN or infinite {', '.join(bad)}; a "
                           "policy normalized with them trains on NaN", file="meta/stats.json")

    def _fed_fast(self, ep: Episode, camera: str) -> str | None:
        """How the episode's rows came faster than real time, if they did (wall time, else capture times)."""
        if self.fps is None:
            return None
        real_s = ep.length / self.fps
        if ep.wall_time_s is not None and ep.wall_time_s < FAST_FEED_RATIO * real_s:
            return (f"its {ep.length} rows came in {ep.wall_time_s:.2f} s, {real_s / max(ep.wall_time_s, 1e-6):.1f} "
                    f"times faster than {self.fps} fps")
        interval = self._capture_stats.get((ep.index, camera))
        if interval is not None and interval[0] < FAST_FEED_RATIO * 1000 / self.fps:
            return (f"its frames were captured {interval[0]:.1f} ms apart (median), not every "
                    f"{1000 / self.fps:.1f} ms")
        return None

    def _check_capture_times(self) -> None:
        rows = self.rows
        if rows is None or not rows.capture:
            return
        period = 1.0 / self.fps
        for ep in self.episodes:
            pos = rows.positions(ep.episode_index)
            if len(pos) < 2:
                continue
            per_camera = {}
            for k, column in rows.capture.items():
                t = column[pos]
                per_camera[k] = t
                t = t[~np.isnan(t)]
                if len(t) < 2:
                    continue
                intervals = np.diff(t)
                p50, p99 = (float(x) for x in np.percentile(intervals, [50, 99]))
                self._capture_stats[(ep.index, k)] = (p50 * 1e3, p99 * 1e3)
                where = {"episode": ep.index, "camera": k}
                stats = f"capture interval p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms"
                repeated = np.flatnonzero(intervals == 0) + 1
                if repeated.size:
                    self.warning("capture_repeated", f"episode {ep.index} {k}: {repeated.size} row(s) hold the same "
                                 f"camera frame as the row before (same capture time; first: row {repeated[0]}): the "
                                 "camera delivered no new frame in time, so its previous one was recorded again",
                                 **where, row=int(repeated[0]))
                backwards = np.flatnonzero(intervals < 0) + 1
                if backwards.size:
                    self.warning("capture_time_order", f"episode {ep.index} {k}: {backwards.size} capture time(s) "
                                 f"go back from one row to the next (first: row {backwards[0]})", **where,
                                 row=int(backwards[0]))
                if abs(p50 - period) > CAPTURE_RATE_REL * period:
                    self.warning("capture_rate", f"episode {ep.index} {k}: {stats}; at fps={self.fps} it should "
                                 f"be {period * 1e3:.1f} ms: the camera does not deliver {self.fps} frames/s",
                                 **where)
                if p99 > CAPTURE_JITTER_PERIODS * period:
                    limit_ms = CAPTURE_JITTER_PERIODS * period * 1e3
                    self.warning("capture_jitter", f"episode {ep.index} {k}: {stats}, above "
                                 f"{CAPTURE_JITTER_PERIODS:g} frame periods ({limit_ms:.1f} ms): frames arrive "
                                 "irregularly", **where)
            if len(per_camera) >= 2:
                stacked = np.stack(list(per_camera.values()))
                ok = ~np.isnan(stacked).any(axis=0)
                if ok.sum() == 0:
                    continue
                spread = stacked[:, ok].max(axis=0) - stacked[:, ok].min(axis=0)
                p50, p99 = (float(x) for x in np.percentile(spread, [50, 99]))
                self._skew_stats[ep.index] = (p50 * 1e3, p99 * 1e3)
                if p99 > CAMERA_SKEW_PERIODS * period:
                    self.warning("camera_skew", f"episode {ep.index}: the cameras' capture times within one row "
                                 f"differ by p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, above half a frame "
                                 f"period ({CAMERA_SKEW_PERIODS * period * 1e3:.1f} ms)", episode=ep.index)

    # -- per episode and camera -----------------------------------------------------------------

    def _build_checks(self) -> None:
        rows = self.rows
        for ep in self.episodes:
            n_rows = None if rows is None else len(rows.positions(ep.episode_index))
            for k, v in ep.videos.items():
                interval = self._capture_stats.get((ep.index, k), (None, None))
                skew = self._skew_stats.get(ep.index, (None, None)) if (ep.index, k) in self._capture_stats \
                    else (None, None)
                self.checks.append(EpisodeVideoCheck(
                    episode=ep.index, camera=k, length=ep.length, rows=n_rows,
                    frames=self._frames.get((ep.index, k)), dropped=v.dropped, from_timestamp_s=v.from_s,
                    to_timestamp_s=v.to_s, video_file=v.file, data_file=ep.data_file,
                    interval_p50_ms=interval[0], interval_p99_ms=interval[1], skew_p50_ms=skew[0],
                    skew_p99_ms=skew[1]))

