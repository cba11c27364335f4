"""`verify_many()`: `verify()` on many datasets, one task each, in this process or on Ray."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._errors import ConfigError
from ..check._report import VerifyReport
from ..check._verify import verify
from ._runner import Progress, runner


def _verify_one(root: str) -> VerifyReport:
    return verify(root)


def verify_many(roots: Sequence[str | Path], *, ray: str | None = None, workers: int | None = None,
                progress: Progress | None = None) -> list[VerifyReport]:
    """Verify each dataset (see `streamrec.verify`); reports in the order given.

    Args:
        ray: None: one after the other in this process (Ray not imported). `local`, `auto` or an
            address: one Ray task per dataset.
        workers: Ray tasks at once (default: every CPU of the cluster).
    """
    if isinstance(roots, (str, Path)) or not roots:
        raise ConfigError(f"verify_many: roots = {roots!r}: give a list of dataset folders")
    with runner(ray, workers, progress) as run:
        return run.map(_verify_one, [str(r) for r in roots], stage="verify")


def worst_exit_code(reports: Sequence[VerifyReport]) -> int:
    """2 if any is not a dataset, else 1 if any has errors, else 0."""
    return max((r.exit_code for r in reports), default=0)
