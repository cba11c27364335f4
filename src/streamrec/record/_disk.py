"""What to tell a user whose disk filled up while recording: what happened, the figures, what to do."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path


def disk_full(error: BaseException, root: Path, *, episodes: int, frames: int, fps: int) -> str | None:
    """For an error caused by a full disk, the explanation (None for any other error).

    Args:
        episodes: Episodes saved so far (they are kept).
        frames: Frames saved so far (for the MB per minute this recording used).
    """
    texts = [str(error), str(error.__cause__ or "")]
    if isinstance(error, OSError) and error.errno == errno.ENOSPC and error.filename:
        texts.append(str(error.filename))
    if not any("No space left on device" in t or "[Errno 28]" in t for t in texts):
        return None
    free = shutil.disk_usage(root).free
    written = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    minutes = max(frames / fps / 60, 1e-9)
    rate = f"; this recording used {written / 2**20 / minutes:.0f} MB per minute so far" if frames else ""
    return (f"the disk holding {root} is full ({free / 2**20:.1f} MB free){rate}. The {episodes} episode(s) "
            f"saved so far are kept: free some space, then run `streamrec repair {root}` (finalize() needs room "
            "for the tables too)")
