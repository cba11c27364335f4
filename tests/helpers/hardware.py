"""What this machine has, for skipping hardware tests with the reason."""

from __future__ import annotations

import glob

import pytest

from streamrec.encode._codecs import compiled_in

NVIDIA = bool(glob.glob("/dev/nvidia[0-9]*"))
DRI = bool(glob.glob("/dev/dri/renderD*"))
V4L2 = bool(glob.glob("/dev/video*"))
ANY_ENCODER_DEVICE = NVIDIA or DRI or V4L2


def needs_compiled(encoder: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not compiled_in(encoder), reason=f"this PyAV's FFmpeg has no {encoder}")


no_gpu = pytest.mark.skipif(ANY_ENCODER_DEVICE, reason="this machine has an encoder device (/dev/nvidia*, "
                            "/dev/dri, /dev/video*): the test is about a machine without one")
