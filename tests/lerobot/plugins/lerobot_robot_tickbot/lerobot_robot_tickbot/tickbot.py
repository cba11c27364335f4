from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from lerobot.cameras.opencv import OpenCVCamera, OpenCVCameraConfig
from lerobot.robots.robot import Robot

from .config_tickbot import TickBotConfig

BITS = 12


def read_id(image: np.ndarray) -> int:
    """The number an RGB frame of the tests' id videos shows: 12 blocks (4 x 3), bright = 1, bit 0
    top left, row by row; each block's centre in the red channel decides."""
    height, width = image.shape[:2]
    bh, bw = height // 3, width // 4
    ident = 0
    for bit in range(BITS):
        r, c = divmod(bit, 4)
        block = image[r * bh + bh // 4:(r + 1) * bh - bh // 4, c * bw + bw // 4:(c + 1) * bw - bw // 4, 0]
        if block.mean() > 128:
            ident |= 1 << bit
    return ident


class _Feeder(threading.Thread):
    """Writes a video file's frames, one per credit, into a named pipe as a YUV4MPEG2 stream.

    LeRobot's OpenCVCamera reads a regular file as fast as it decodes (thirty 320x240 frames in 7 ms
    here) and fails at its end, so a file played straight would not stand for a camera. Through the
    pipe its reader thread gets exactly one new frame per observation. The file is decoded once, before
    the camera opens, so that feeding costs no decoding; it loops at its end.
    """

    def __init__(self, video: Path, pipe: Path, width: int, height: int, fps: int) -> None:
        super().__init__(name=f"tickbot-feed-{pipe.stem}", daemon=True)
        self.video, self.pipe, self.size, self.fps = video, pipe, (width, height), fps
        self.credits = threading.Semaphore(0)
        self.closing = False
        self.error: BaseException | None = None
        self.source_open = threading.Event()
        """Set once the video is decoded: the camera may then open the pipe."""

    def _decode(self) -> list[bytes]:
        cap = cv2.VideoCapture(str(self.video))
        if not cap.isOpened():
            raise OSError(f"tickbot: cannot open video {self.video}")
        frames = []
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                if bgr.shape[1::-1] != self.size:
                    raise OSError(f"tickbot: {self.video} is {bgr.shape[1]}x{bgr.shape[0]}, not "
                                  f"{self.size[0]}x{self.size[1]}")
                frames.append(b"FRAME\n" + cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())
        finally:
            cap.release()
        if not frames:
            raise OSError(f"tickbot: {self.video} has no frame")
        return frames

    def run(self) -> None:
        try:
            try:
                frames = self._decode()
            finally:
                self.source_open.set()
            with open(self.pipe, "wb", buffering=0) as out:
                out.write(f"YUV4MPEG2 W{self.size[0]} H{self.size[1]} F{self.fps}:1 Ip A1:1 C420jpeg\n".encode())
                sent = 0
                while True:
                    self.credits.acquire()
                    if self.closing:
                        return
                    out.write(frames[sent % len(frames)])
                    sent += 1
        except BrokenPipeError:
            return  # the camera closed its end
        except BaseException as e:  # noqa: BLE001 - reported by get_observation
            self.error = e

    def close(self) -> None:
        self.closing = True
        self.credits.release()
        self.join(timeout=5)


class TickBot(Robot):
    config_class = TickBotConfig
    name = "tickbot"

    def __init__(self, config: TickBotConfig):
        super().__init__(config)
        self.config = config
        self._dir = Path(tempfile.mkdtemp(prefix="tickbot-"))
        self._videos = {name: Path(cam.index_or_path) for name, cam in config.cameras.items()}
        # Each camera opens the pipe its feeder fills; the size is checked against the config at connect.
        self.cameras = {
            name: OpenCVCamera(OpenCVCameraConfig(index_or_path=self._dir / f"{name}.y4m", fps=None, width=None,
                                                  height=None, color_mode=cam.color_mode, warmup_s=0))
            for name, cam in config.cameras.items()}
        self._feeders: dict[str, _Feeder] = {}
        self._connected = False
        self.ticks = 0
        self._joints = np.zeros(config.joints)

    @property
    def _joint_names(self) -> list[str]:
        return [f"j{i}.pos" for i in range(self.config.joints)]

    @property
    def observation_features(self) -> dict[str, Any]:
        values: dict[str, Any] = {name: float for name in self._joint_names}
        values["tick"] = float
        values.update({f"{name}.frame": float for name in self.config.cameras})
        values.update({name: (cam.height, cam.width, 3) for name, cam in self.config.cameras.items()})
        return values

    @property
    def action_features(self) -> dict[str, type]:
        return {name: float for name in self._joint_names}

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def connect(self, calibrate: bool = True) -> None:
        for name, cam in self.config.cameras.items():
            pipe = self._dir / f"{name}.y4m"
            pipe.unlink(missing_ok=True)
            os.mkfifo(pipe)
            feeder = _Feeder(self._videos[name], pipe, cam.width, cam.height, cam.fps)
            feeder.start()
            feeder.source_open.wait(60)
            if feeder.error is not None:
                raise ConnectionError(f"tickbot camera {name!r}: {feeder.error}")
            feeder.credits.release()  # frame 0, which opening the stream waits for
            self._feeders[name] = feeder
            self.cameras[name].connect()
            got = (self.cameras[name].width, self.cameras[name].height)
            if got != (cam.width, cam.height):
                raise ValueError(f"tickbot camera {name!r}: {self._videos[name]} is {got[0]}x{got[1]}, the "
                                 f"config says {cam.width}x{cam.height}")
            self.cameras[name].async_read(timeout_ms=5000)  # frame 0, taken so that observations start afresh
        self._connected = True

    def get_observation(self) -> dict[str, Any]:
        """The cameras' next frames (fed now, so a camera frame is as fresh as a real camera's newest),
        except after a stall, when each camera still holds the previous observation's frame."""
        if not self._connected:
            raise ConnectionError("tickbot is not connected")
        tick = self.ticks
        self.ticks += 1
        stall = self.config.stall_every and tick % self.config.stall_every == self.config.stall_every - 1
        obs: dict[str, Any] = dict(zip(self._joint_names, self._joints.tolist()))
        obs["tick"] = float(tick)
        for name, feeder in self._feeders.items():
            if feeder.error is not None:
                raise ConnectionError(f"tickbot camera {name!r}: {feeder.error}")
            if not stall:
                feeder.credits.release()
        for name, cam in self.cameras.items():
            image = cam.read_latest(max_age_ms=60_000) if stall else cam.async_read(timeout_ms=5000)
            obs[f"{name}.frame"] = float(read_id(image))
            obs[name] = image
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, Any]:
        if not self._connected:
            raise ConnectionError("tickbot is not connected")
        self._joints = np.array([float(action[name]) for name in self._joint_names])
        return action

    def disconnect(self) -> None:
        for name, cam in self.cameras.items():
            feeder = self._feeders.get(name)
            if cam.is_connected:
                # The camera's reader thread may be waiting inside a read for the next frame: keep
                # frames coming until disconnect() has stopped it.
                stopper = threading.Thread(target=cam.disconnect)
                stopper.start()
                while stopper.is_alive():
                    if feeder is not None:
                        feeder.credits.release()
                    stopper.join(0.02)
            if feeder is not None:
                feeder.close()
        self._feeders.clear()
        self._connected = False
        shutil.rmtree(self._dir, ignore_errors=True)
