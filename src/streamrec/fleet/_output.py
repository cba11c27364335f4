"""The output folder of a fleet operation: written beside OUT under another name, renamed into place last.

So OUT appears complete or not at all. The staging folder is `.<OUT name>.partial`; its work folder
(`.streamrec/`, as in a recording) holds a lock while an operation writes it, and the spools of a
transcode. A staging folder without a live lock is what an interrupted run left: the next run
removes it and starts again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from .._errors import DatasetError
from ..dataset._durable import fsync_dir
from ..dataset._layout import Layout
from ..dataset._lock import WorkLock, lock_holder


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


class StagedOutput:
    """Where an operation writes OUT (see the module docstring). Use as a context manager; call
    `commit()` at the end. On an exception the staging folder is removed."""

    def __init__(self, output: str | Path, sources: Sequence[str | Path], what: str) -> None:
        self.output = Path(output).absolute()
        self.what = what
        self.staging = self.output.parent / f".{self.output.name}.partial"
        self.layout = Layout(self.staging)
        if self.output.exists():
            raise DatasetError(f"{what}: the output {self.output} already exists; give a new folder (it is "
                               "written whole or not at all)")
        for source in sources:
            src = Path(source).resolve()
            if _inside(self.output.resolve(), src) or _inside(src, self.output.resolve()):
                raise DatasetError(f"{what}: the output {self.output} is inside the source {source} (or holds "
                                   "it); sources are never written to, choose a folder outside them")
        self._lock: WorkLock | None = None
        self._busy = f"{what}: another process is writing {self.output} right now ({self.staging} is locked)"

    def __enter__(self) -> StagedOutput:
        if not self.output.parent.is_dir():
            raise DatasetError(f"{self.what}: the output's parent folder {self.output.parent} does not exist")
        if self.staging.exists():
            holder = lock_holder(self.layout)
            if holder is not None:
                raise DatasetError(self._busy + (f" (process {holder})" if holder else ""))
            shutil.rmtree(self.staging)  # an interrupted run's: start again
        self.layout.work.mkdir(parents=True)
        self._lock = WorkLock(self.layout, self.what, busy=self._busy)
        return self

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def commit(self) -> None:
        """Remove the work folder and rename the staging folder to OUT."""
        self._unlock()
        shutil.rmtree(self.layout.work)
        fsync_dir(self.staging)
        if self.output.exists():
            raise DatasetError(f"{self.what}: {self.output} appeared while it was being written; the result is "
                               f"left in {self.staging}")
        os.rename(self.staging, self.output)
        fsync_dir(self.output.parent)

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        self._unlock()
        if error is not None and self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
