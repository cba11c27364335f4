"""A recorded clip folder (see the footage README) played as a camera, with its robot's recorded state and action."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ._configs import FootageCameraConfig
from ._robot import RobotSource
from ._source import CameraSource, SourceError

log = logging.getLogger("streamrec")


class FootageSource(CameraSource):
    """Replays `<camera>.mkv` of a clip folder; decodes every frame at open, then loops.

    `frame_index` is the clip frame the last `read()` returned, so `FootageRobot` can give the
    state recorded with it.
    """

    config: FootageCameraConfig

    @property
    def folder(self) -> Path:
        return Path(self.config.path)

    @property
    def camera(self) -> str:
        return self.config.camera or self.name

    @property
    def shape(self) -> tuple[int, int, int]:
        return self._frames[0].shape  # type: ignore[return-value]

    @property
    def frame_count(self) -> int:
        """Frames decoded from the clip (the loop length)."""
        return len(self._frames)

    def _open_impl(self) -> None:
        import av

        folder = self.folder
        if not folder.is_dir():
            raise SourceError(f"camera {self.name!r} (footage): {folder} is not a folder")
        video = folder / f"{self.camera}.mkv"
        if not video.is_file():
            have = sorted(p.stem for p in folder.glob("*.mkv"))
            raise SourceError(f"camera {self.name!r} (footage): {folder} has no camera {self.camera!r}; "
                              f"it has {have} (set `camera:` in the spec)")
        limit = self.config.max_frames
        frames = []
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # FFV1 decodes slices in parallel
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="rgb24")
                image.flags.writeable = False  # shared by every loop of the clip
                frames.append(image)
                if limit is not None and len(frames) >= limit:
                    break
        if not frames:
            raise SourceError(f"camera {self.name!r} (footage): {video} holds no frames")
        if frames[0].shape[0] % 2 or frames[0].shape[1] % 2:
            raise SourceError(f"camera {self.name!r} (footage): {video} is {frames[0].shape[1]}x"
                              f"{frames[0].shape[0]}; the encoders need even sizes")
        self._frames = frames
        self.frame_index = -1

    def read(self) -> np.ndarray:
        self.frame_index = (self.frame_index + 1) % len(self._frames)
        return self._frames[self.frame_index]

    def _close_impl(self) -> None:
        self._frames = []




class FootageRobot(RobotSource):
    """The `observation.state` and `action` rows of `data.npz` that belong to the frame a
    footage camera returned last."""

    def __init__(self, camera: FootageSource) -> None:
        self.camera = camera
        path = camera.folder / "data.npz"
        try:
            with np.load(path) as data:
                self._state = np.asarray(data["observation.state"], np.float32)
                self._action = np.asarray(data["action"], np.float32)
        except (OSError, KeyError, ValueError) as e:
            raise SourceError(f"camera {camera.name!r} (footage): cannot read observation.state and action "
                              f"from {path}: {e}") from e
        n = camera.frame_count
        if len(self._state) < n or len(self._action) < n:
            raise SourceError(f"camera {camera.name!r} (footage): {path} has {len(self._state)} rows for "
                              f"{n} video frames")
        self._names = None
        manifest = camera.folder / "manifest.json"
        if manifest.is_file():
            import json

            names = json.loads(manifest.read_text()).get("state_names")
            if isinstance(names, list) and len(names) == self._state.shape[1]:
                self._names = names

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        dim = int(self._state.shape[1])
        return {"observation.state": {"dtype": "float32", "shape": [dim], "names": self._names},
                "action": {"dtype": "float32", "shape": [dim], "names": self._names}}

    def read(self) -> dict[str, np.ndarray]:
        i = max(self.camera.frame_index, 0)
        return {"observation.state": self._state[i], "action": self._action[i]}
