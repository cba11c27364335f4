"""A RealSense recording made with the SDK's software device, for the tests of the `realsense` camera type (no
RealSense exists on these machines)."""

from __future__ import annotations

import numpy as np

from streamrec.capture import SyntheticDepthCameraConfig, SyntheticDepthSource


def make_recording(path, frames: int, width: int = 64, height: int = 48, fps: int = 30) -> list[np.ndarray]:
    """Record colour and depth frames with the SDK's software device: the format a RealSense's recording has
    (the SDK writes `.db3` from librealsense 2.57 on, `.bag` before). Returns the depth frames sent."""
    import pyrealsense2 as rs

    device = rs.software_device()
    sensors = device.add_sensor("Depth"), device.add_sensor("Color")
    intrinsics = rs.intrinsics()
    intrinsics.width, intrinsics.height, intrinsics.fx, intrinsics.fy = width, height, 50.0, 50.0
    intrinsics.ppx, intrinsics.ppy = width / 2, height / 2
    intrinsics.model, intrinsics.coeffs = rs.distortion.none, [0] * 5
    profiles = []
    for uid, (kind, fmt, bpp) in enumerate(((rs.stream.depth, rs.format.z16, 2), (rs.stream.color, rs.format.rgb8, 3))):
        stream = rs.video_stream()
        stream.type, stream.index, stream.uid, stream.fmt, stream.bpp = kind, 0, uid, fmt, bpp
        stream.width, stream.height, stream.fps, stream.intrinsics = width, height, fps, intrinsics
        profiles.append(sensors[uid].add_video_stream(stream))
    sensors[0].add_read_only_option(rs.option.depth_units, 0.001)
    same_place = rs.extrinsics()
    same_place.rotation, same_place.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
    profiles[0].register_extrinsics_to(profiles[1], same_place)
    recorder = rs.recorder(str(path), device)
    queue = rs.frame_queue(frames * 2)
    for sensor, profile in zip(sensors, profiles):
        sensor.open(profile)
        sensor.start(queue)
    scene = SyntheticDepthSource("rs", SyntheticDepthCameraConfig(width=width, height=height))
    scene.open()
    sent = []
    for i in range(frames):
        depth = scene.frame(i)[..., 0]
        colour = np.full((height, width, 3), i * 10 % 250, np.uint8)  # frame i of the first 25 reads as i
        sent.append(depth)
        for sensor, profile, pixels, bpp in ((sensors[0], profiles[0], depth, 2), (sensors[1], profiles[1], colour, 3)):
            frame = rs.software_video_frame()
            frame.pixels, frame.stride, frame.bpp = pixels.tobytes(), width * bpp, bpp
            frame.timestamp, frame.frame_number = i * 1000 / fps, i + 1
            frame.domain = rs.timestamp_domain.hardware_clock
            frame.profile = profile.as_video_stream_profile()
            sensor.on_video_frame(frame)
    for sensor in sensors:
        sensor.stop()
        sensor.close()
    del recorder  # the recording is written out when the recorder goes
    return sent
