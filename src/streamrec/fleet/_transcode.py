"""`transcode()`: a dataset with every video re-encoded, everything else kept.

Two stages of tasks, planned in this process:

- one task per episode and camera: the episode's frames decoded from the source MP4 (PyAV) and
  encoded by a fresh codec through streamrec's own encoder settings and fallback chain
  (`encode._fallback.EpisodeCodec`: pts k for frame k, one packet per frame, in order) into a
  packet spool in the output's work folder. Every episode starts with a keyframe, as a recorded one;
- one task per output camera file: the spools appended in episode order (`dataset._mp4.VideoFile`).
  A new file starts when the current one would pass `video_files_size_in_mb` or when the encoder
  that made an episode changes (a fallback), as while recording.

Rows and frames stay 1:1: each episode gets exactly its `length` frames, at the slots its rows
point to. The data files, tasks and stats are copied as they are; `meta/episodes` keeps every
column (drop counts included) with the video positions rewritten; info.json keeps everything but
each camera's `info` block, which describes the new streams.

The encoder's threads per task are fixed (`encoder_threads`, default 1), not left to the codec: an
encoder's output can depend on its thread count, and a task must make the same packets wherever it runs.
"""

from __future__ import annotations

import copy
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa

from .._errors import ConfigError, DatasetError
from ..dataset._durable import write_json_atomic, write_parquet_atomic
from ..dataset._layout import VIDEO_PATH, FileIndex, Layout, file_sizes
from ..dataset._mp4 import PacketSpool, VideoFile
from ..dataset._reader import DatasetReader, Episode
from ..dataset._writer import video_info
from ..encode._config import EncoderConfig
from ..encode._fallback import EncoderFallback, EpisodeCodec
from ..encode._priority import demote_current_thread
from ..encode._probe import choose_encoders
from ._output import StagedOutput
from ._runner import Progress, TaskLog, runner
from ._streams import Grid, first_slot, stream_params

_MB = 2**20


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscodeReport:
    """What `transcode()` wrote."""

    output: Path
    source: Path
    episodes: int
    frames: int
    """Rows of the dataset; each camera got as many frames."""
    encoders: dict[str, tuple[str, ...]]
    """Camera -> the encoders that made its files (FFmpeg names), in file order."""
    fallbacks: tuple[EncoderFallback, ...]
    video_files: dict[str, int]
    source_video_bytes: int
    video_bytes: int
    encode_s: float
    """Time inside the encoding tasks, summed (CPU-bound work: decode + encode)."""
    elapsed_s: float
    runner: str
    nodes: dict[str, int] = field(default_factory=dict)

    @property
    def frames_per_s(self) -> float:
        """Camera frames transcoded per second of wall time."""
        return self.frames * len(self.encoders) / self.elapsed_s if self.elapsed_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "source": str(self.source), "episodes": self.episodes,
                "frames": self.frames, "encoders": {k: list(v) for k, v in self.encoders.items()},
                "fallbacks": [str(f) for f in self.fallbacks], "video_files": self.video_files,
                "source_video_bytes": self.source_video_bytes, "video_bytes": self.video_bytes,
                "encode_s": round(self.encode_s, 3), "elapsed_s": round(self.elapsed_s, 3),
                "frames_per_s": round(self.frames_per_s, 2), "runner": self.runner, "nodes": self.nodes}


# -- the tasks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _EpisodeJob:
    source: str
    camera: str
    episode_index: int
    first: int
    """The episode's first frame's slot in the source file."""
    length: int
    chain: tuple[EncoderConfig, ...]
    width: int
    height: int
    fps: int
    threads: int
    spool: str


@dataclass(frozen=True, slots=True)
class _EncodedEpisode:
    packets: int
    bytes: int
    encoder: EncoderConfig
    fallbacks: tuple[EncoderFallback, ...]


def _encode_episode(job: _EpisodeJob) -> _EncodedEpisode:
    """Decode one episode of one camera from its source MP4 and encode it into a spool.

    In a thread of its own, demoted first: SVT-AV1 gives the thread that opens it, and its own threads,
    SCHED_FIFO 99 when the process may (root); the caller's thread (a script, a Ray worker) must keep its
    scheduling, and the codec's threads are born without CAP_SYS_NICE (see `encode._priority`).
    """
    outcome: dict[str, Any] = {}

    def work() -> None:
        demote_current_thread(nice=0)
        try:
            outcome["result"] = _encode(job)
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=work, name="sr-transcode")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _encode(job: _EpisodeJob) -> _EncodedEpisode:
    what = f"{job.source} episode {job.episode_index}"
    spool_path = Path(job.spool)
    events: list[EncoderFallback] = []
    codec = EpisodeCodec(list(job.chain), job.width, job.height, job.fps, job.threads,
                         spool_path.with_name(f"open-{spool_path.name}"), PacketSpool, events, job.camera)
    fed = 0
    try:
        with av.open(job.source) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = job.threads
            tb = stream.time_base
            grid = Grid(tb, job.fps, job.source)
            # Each episode starts with a keyframe (streamrec's and LeRobot's alike), so the seek lands on it.
            container.seek(int(Fraction(job.first, job.fps) / tb), stream=stream, backward=True)
            for frame in container.decode(stream):
                k = grid.slot(frame.pts) - job.first
                if k < 0:
                    continue
                if k >= job.length:
                    break
                if k != fed:
                    raise DatasetError(f"{what}: {job.camera}'s frame for row {fed} is missing from {job.source} "
                                       f"(the next one is row {k})")
                # The source's frame types and time base must not steer the new encoder.
                frame.pict_type = av.video.frame.PictureType.NONE
                frame.time_base = Fraction(1, job.fps)
                codec.encode(frame)
                fed += 1
        if fed != job.length:
            raise DatasetError(f"{what}: {job.source} holds {fed} frame(s) of {job.camera} for the episode's "
                               f"{job.length} rows")
        spool = codec.finish()
    except BaseException:
        codec.abort()
        raise
    if spool.packets != job.length:
        raise DatasetError(f"{what}: the encoder returned {spool.packets} packets for {job.length} frames")
    spool.keep(spool_path)
    return _EncodedEpisode(spool.packets, spool.bytes, codec.encoder, tuple(events))


@dataclass(frozen=True, slots=True)
class _MuxJob:
    out: str
    codec: str
    fps: int
    width: int
    height: int
    spools: tuple[str, ...]


def _mux_file(job: _MuxJob) -> int:
    """Append the episodes' spools to one output camera file, in order; returns its bytes."""
    out = Path(job.out)
    file = VideoFile(out, FileIndex.of(out) or FileIndex(), job.codec, job.fps, job.width, job.height)
    try:
        for spool in job.spools:
            file.append_kept(Path(spool))
    finally:
        file.close()
    for spool in job.spools:
        Path(spool).unlink()
    return file.bytes


# -- the operation ------------------------------------------------------------------------------


def transcode(source: str | Path, output: str | Path, encoder: EncoderConfig, *, encoder_threads: int = 1,
              ray: str | None = None, workers: int | None = None, progress: Progress | None = None
              ) -> TranscodeReport:
    """Re-encode every video of a dataset into a new dataset at `output`; rows and frames stay 1:1.

    Args:
        source: A finalized LeRobot v3.0 dataset (streamrec's or LeRobot's).
        output: A folder that does not exist yet; written beside itself and renamed into place at
            the end (complete or not at all).
        encoder: The new streams' settings, e.g. `EncoderConfig(vcodec="libsvtav1", crf=30, g=2)`;
            `vcodec="auto"` picks the encoder that works here (see `streamrec probe`).
        encoder_threads: Codec threads per task (fixed, so a task encodes the same wherever it runs).
        ray: None: in this process (Ray not imported). `local`, `auto` or an address: one Ray task
            per episode and camera, then one per output file.
        workers: Ray tasks at once (default: every CPU of the cluster).
        progress: Called after each task.

    Raises:
        DatasetError: the source is unsound or not finalized; nothing is written then.
    """
    t0 = time.perf_counter()
    if not isinstance(encoder, EncoderConfig):
        raise ConfigError(f"transcode: encoder = {encoder!r}: must be an EncoderConfig")
    if isinstance(encoder_threads, bool) or not isinstance(encoder_threads, int) or encoder_threads < 1:
        raise ConfigError(f"transcode: encoder_threads = {encoder_threads!r}: must be an integer >= 1")
    root = Path(source)
    staged = StagedOutput(output, [root], "transcode")
    reader = _read(root)
    fps = int(reader.fps)
    cameras = list(reader.cameras)
    episodes = reader.episodes
    layout = staged.layout
    chains: dict[str, tuple[EncoderConfig, ...]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    jobs: list[_EpisodeJob] = []
    for k in cameras:
        shape = reader.features[k]["shape"]
        height, width = int(shape[0]), int(shape[1])
        sizes[k] = (width, height)
        # Chosen here, once: every task of the camera gets the same chain wherever it runs.
        chains[k] = choose_encoders(encoder, width, height, fps, encoder_threads, camera=k)
        checked: set[str] = set()
        for ep in episodes:
            video = ep.videos[k]
            path = root / video.file
            if video.file not in checked:
                p = stream_params(path)
                if (p.width, p.height) != (width, height):
                    raise DatasetError(f"transcode: {path} is {p.width}x{p.height} (width x height), but {k} has "
                                       f"shape {shape} (height, width, channels)")
                checked.add(video.file)
            what = f"{root} episode {ep.episode_index}"
            jobs.append(_EpisodeJob(str(path), k, ep.episode_index, first_slot(video.from_s, fps, what),
                                    ep.length, chains[k], width, height, fps, encoder_threads,
                                    str(layout.spool(k, ep.episode_index))))
    limit = file_sizes(reader.info)["video_files_size_in_mb"] * _MB
    chunks_size = reader.chunks_size
    with staged, runner(ray, workers, progress) as run:
        encoded = run.map(_encode_episode, jobs, stage="encode episodes", units=[j.length for j in jobs],
                          unit="frames")
        log: TaskLog = run.log
        encode_s = log.task_s
        by_camera: dict[str, list[tuple[Episode, _EncodedEpisode]]] = {k: [] for k in cameras}
        for job, result, ep in zip(jobs, encoded, [ep for _ in cameras for ep in episodes]):
            by_camera[job.camera].append((ep, result))
        mux_jobs, placed, file_encoders = _plan_files(by_camera, layout, fps, sizes, limit, chunks_size)
        written = run.map(_mux_file, mux_jobs, stage="write video files", units=[len(j.spools) for j in mux_jobs],
                          unit="episodes")
        _write_tables(reader, layout, placed, file_encoders, fps, sizes)
        staged.commit()
        name = run.name
    return TranscodeReport(
        output=staged.output, source=root, episodes=len(episodes), frames=sum(ep.length for ep in episodes),
        encoders={k: tuple(e.encoder for e in file_encoders[k].values()) for k in cameras},
        fallbacks=tuple(f for r in encoded for f in r.fallbacks),
        video_files={k: len(file_encoders[k]) for k in cameras},
        source_video_bytes=sum(p.stat().st_size for k in cameras for p in reader.files("videos", k)),
        video_bytes=int(sum(written)), encode_s=encode_s, elapsed_s=time.perf_counter() - t0, runner=name,
        nodes=dict(log.nodes))


def _read(root: Path) -> DatasetReader:
    reader = DatasetReader(root)
    reader.require_finalized("transcode")
    if not reader.cameras or not reader.episodes:
        raise DatasetError(f"transcode: {root} has no video feature or no episode; there is nothing to re-encode")
    return reader


def _plan_files(by_camera: Mapping[str, list[tuple[Episode, _EncodedEpisode]]], layout: Layout, fps: int,
                sizes: Mapping[str, tuple[int, int]], limit: float, chunks_size: int
                ) -> tuple[list[_MuxJob], dict[tuple[str, int], tuple[FileIndex, int]],
                           dict[str, dict[FileIndex, EncoderConfig]]]:
    """Episodes into output files, as the recorder fills them: a new file when full or when the encoder changes."""
    jobs: list[_MuxJob] = []
    placed: dict[tuple[str, int], tuple[FileIndex, int]] = {}
    file_encoders: dict[str, dict[FileIndex, EncoderConfig]] = {}
    for k, episodes in by_camera.items():
        width, height = sizes[k]
        files: list[tuple[EncoderConfig, list[str]]] = []
        at, size, frames = FileIndex(), 0, 0
        for ep, result in episodes:
            if files and (result.encoder != files[-1][0] or (size and size + result.bytes > limit)):
                at, size, frames = at.next(chunks_size), 0, 0
            if not frames:
                files.append((result.encoder, []))
            files[-1][1].append(str(layout.spool(k, ep.episode_index)))
            placed[(k, ep.index)] = (at, frames)
            frames += result.packets
            size += result.bytes
        file_encoders[k] = {}
        at = FileIndex()
        for encoder, spools in files:
            file_encoders[k][at] = encoder
            jobs.append(_MuxJob(str(layout.video(k, at)), encoder.stream_codec, fps, width, height, tuple(spools)))
            at = at.next(chunks_size)
    return jobs, placed, file_encoders


def _write_tables(reader: DatasetReader, layout: Layout, placed: Mapping[tuple[str, int], tuple[FileIndex, int]],
                  file_encoders: Mapping[str, Mapping[FileIndex, EncoderConfig]], fps: int,
                  sizes: Mapping[str, tuple[int, int]]) -> None:
    src = reader.layout
    for path in reader.files("data"):
        target = layout.root / src.rel(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    layout.meta.mkdir(parents=True, exist_ok=True)
    for name in ("tasks", "stats"):
        path = getattr(src, name)
        if path.exists():
            shutil.copyfile(path, getattr(layout, name))
    table = reader.episodes_table()
    episodes = reader.episodes
    if table is not None and episodes:
        new: dict[str, pa.Array] = {
            "meta/episodes/chunk_index": pa.array(np.zeros(len(episodes), np.int64)),
            "meta/episodes/file_index": pa.array(np.zeros(len(episodes), np.int64)),
        }
        for k in reader.cameras:
            at = [placed[(k, ep.index)] for ep in episodes]
            new[f"videos/{k}/chunk_index"] = pa.array([a.chunk for a, _ in at], pa.int64())
            new[f"videos/{k}/file_index"] = pa.array([a.file for a, _ in at], pa.int64())
            new[f"videos/{k}/from_timestamp"] = pa.array([f / fps for _, f in at], pa.float64())
            new[f"videos/{k}/to_timestamp"] = pa.array([(f + ep.length) / fps for (_, f), ep in zip(at, episodes)],
                                                       pa.float64())
        for column, values in new.items():
            if column in table.column_names:
                table = table.set_column(table.column_names.index(column), column, values)
            else:
                table = table.append_column(column, values)
        write_parquet_atomic(layout.episodes(FileIndex()), table.replace_schema_metadata(None))
    info = copy.deepcopy(reader.info)
    for k in reader.cameras:
        files = file_encoders[k]
        first = files[min(files, key=lambda at: at.order)]
        width, height = sizes[k]
        codecs = {f"{at.name}.mp4": enc.stream_codec for at, enc in files.items()}
        info["features"][k]["info"] = video_info(fps, height, width, first, codecs)
    info["video_path"] = VIDEO_PATH  # the data files keep their names, and data_path with them
    write_json_atomic(layout.info, info)


def parse_encoder(vcodec: str, *, crf: float | None = None, preset: str | None = None, g: int | None = None,
                  pix_fmt: str | None = None) -> EncoderConfig:
    """The command's flags as an EncoderConfig; what is not given keeps EncoderConfig's default. A preset
    of digits is a number (SVT-AV1's), anything else a name (x264's `veryfast`)."""
    kwargs: dict[str, Any] = {"vcodec": vcodec}
    if crf is not None:
        kwargs["crf"] = int(crf) if float(crf).is_integer() else crf
    if preset is not None:
        kwargs["preset"] = int(preset) if str(preset).isdigit() else preset
    if g is not None:
        kwargs["g"] = g
    if pix_fmt is not None:
        kwargs["pix_fmt"] = pix_fmt
    return EncoderConfig(**kwargs)
