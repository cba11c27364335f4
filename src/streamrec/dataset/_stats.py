"""Feature statistics in the v3.0 layout: per episode, then aggregated for meta/stats.json."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_NAMES = ("min", "max", "mean", "std", "count", *QUANTILES)

Stats = dict[str, np.ndarray]


class ImageStatsSampler:
    """Per-channel pixel histograms of a subsample of one episode's frames.

    Runs in the encoder worker, never on the capture thread. A 256-bin histogram per channel
    gives exact min/max/quantiles for uint8 pixels and cheap mean/std, from 1 pixel in 16 of
    every `frame_stride`-th frame.
    """

    PIXEL_STEP = 4

    def __init__(self, frame_stride: int) -> None:
        self.frame_stride = max(1, frame_stride)
        self._hist = np.zeros((3, 256), np.int64)
        self._frames = 0

    def maybe_add(self, slot: int, frame: np.ndarray) -> None:
        if slot % self.frame_stride and self._frames:  # the first frame always counts: stats need one
            return
        px = frame[:: self.PIXEL_STEP, :: self.PIXEL_STEP].reshape(-1, 3)
        for c in range(3):
            self._hist[c] += np.bincount(px[:, c], minlength=256)
        self._frames += 1

    def stats(self) -> Stats:
        """Stats scaled to [0, 1], each of shape (3, 1, 1) except `count` (1,): sampled frames."""
        if self._frames == 0:
            raise ValueError("no frame was sampled")
        values = np.arange(256, dtype=np.float64) / 255.0
        total = self._hist.sum(axis=1)
        mean = (self._hist * values).sum(axis=1) / total
        var = (self._hist * values**2).sum(axis=1) / total - mean**2
        cdf = np.cumsum(self._hist, axis=1) / total[:, None]
        out = {
            "min": values[np.argmax(self._hist > 0, axis=1)],
            "max": values[255 - np.argmax(self._hist[:, ::-1] > 0, axis=1)],
            "mean": mean,
            "std": np.sqrt(np.maximum(var, 0.0)),
        }
        for name, q in QUANTILES.items():
            out[name] = values[np.argmax(cdf >= q, axis=1)]
        result = {k: v.reshape(3, 1, 1) for k, v in out.items()}
        result["count"] = np.array([self._frames], np.int64)
        return result


def numeric_stats(values: np.ndarray) -> Stats:
    """Stats of an (N, D) array over its N rows; arrays of shape (D,), `count` (1,).

    Non-finite values (recorded with `allow_nonfinite`) are left out, so that a NaN never reaches
    the stats a policy is normalized with; a dimension with no finite value at all gets NaN stats
    (and `verify` reports them)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if not np.isfinite(v).all():
        return _finite_stats(v)
    out = {"min": v.min(axis=0), "max": v.max(axis=0), "mean": v.mean(axis=0), "std": v.std(axis=0),
           "count": np.array([v.shape[0]], np.int64)}
    for name, q in QUANTILES.items():
        out[name] = np.quantile(v, q, axis=0)
    return out


def _finite_stats(v: np.ndarray) -> Stats:
    v = np.where(np.isfinite(v), v, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN dimension: NaN is the answer
        out = {"min": np.nanmin(v, axis=0), "max": np.nanmax(v, axis=0), "mean": np.nanmean(v, axis=0),
               "std": np.nanstd(v, axis=0), "count": np.array([v.shape[0]], np.int64)}
        for name, q in QUANTILES.items():
            out[name] = np.nanquantile(v, q, axis=0)
    return out


def aggregate(per_episode: Sequence[Stats]) -> Stats:
    """Dataset stats from episode stats: exact min/max/mean/std; quantiles count-weighted means."""
    if not all(np.isfinite(np.asarray(s[k], np.float64)).all() for s in per_episode for k in ("min", "mean")):
        return _aggregate_finite(per_episode)
    counts = np.array([float(s["count"][0]) for s in per_episode])
    weights = counts / counts.sum()

    def wsum(key: str) -> np.ndarray:
        return sum(w * s[key] for w, s in zip(weights, per_episode, strict=True))

    mean = wsum("mean")
    # Law of total variance: E[var] + var of the means.
    var = sum(w * (s["std"] ** 2 + (s["mean"] - mean) ** 2) for w, s in zip(weights, per_episode, strict=True))
    out = {
        "min": np.min([s["min"] for s in per_episode], axis=0),
        "max": np.max([s["max"] for s in per_episode], axis=0),
        "mean": mean,
        "std": np.sqrt(np.maximum(var, 0.0)),
        "count": np.array([int(counts.sum())], np.int64),
    }
    for name in QUANTILES:
        out[name] = wsum(name)
    return out


def _aggregate_finite(per_episode: Sequence[Stats]) -> Stats:
    """`aggregate` where some episode has a dimension without a finite value: it is left out of that
    dimension (NaN stats stay only where no episode had a finite value)."""
    counts = np.array([float(s["count"][0]) for s in per_episode])
    means = np.stack([np.asarray(s["mean"], np.float64) for s in per_episode])
    ok = np.isfinite(means)
    w = np.where(ok, counts.reshape((-1,) + (1,) * (means.ndim - 1)), 0.0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        w = w / w.sum(axis=0)

        def wsum(key: str) -> np.ndarray:
            values = np.stack([np.asarray(s[key], np.float64) for s in per_episode])
            return np.where(ok.any(axis=0), (w * np.where(ok, values, 0.0)).sum(axis=0), np.nan)

        mean = wsum("mean")
        stds = np.stack([np.asarray(s["std"], np.float64) for s in per_episode])
        var = np.where(ok.any(axis=0), (w * np.where(ok, stds**2 + (means - mean) ** 2, 0.0)).sum(axis=0), np.nan)
        out = {
            "min": np.nanmin(np.stack([s["min"] for s in per_episode]), axis=0),
            "max": np.nanmax(np.stack([s["max"] for s in per_episode]), axis=0),
            "mean": mean,
            "std": np.sqrt(np.maximum(var, 0.0)),
            "count": np.array([int(counts.sum())], np.int64),
        }
    for name in QUANTILES:
        out[name] = wsum(name)
    return out
