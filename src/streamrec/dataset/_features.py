"""A dataset's features: what `info.json` lists, checked when a recording is set up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._errors import ConfigError
from ._depth import is_depth_info

CAPTURE_TIME_SUFFIX = ".capture_time"
"""`<camera key><suffix>` (float64, seconds since the epoch) holds when each frame was captured."""

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
"""The five columns every v3.0 data file has; the recorder fills them, the user never does."""


@dataclass(frozen=True, slots=True)
class Feature:
    """One entry of `info.json`'s `features`."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    names: Any = None
    depth: bool = False
    """A depth camera: a video feature of shape (H, W, 1), marked `"info": {"is_depth_map": true}`."""

    @property
    def is_video(self) -> bool:
        return self.dtype == "video"

    def to_json(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "shape": list(self.shape), "names": self.names}


def parse_features(features: Mapping[str, Mapping[str, Any]]) -> tuple[Feature, ...]:
    """Check a user's feature dict and return it as `Feature`s, in the user's order."""
    if not isinstance(features, Mapping) or not features:
        raise ConfigError(f"features = {features!r}: must be a non-empty dict of name -> "
                          "{'dtype', 'shape', 'names'}")
    out = []
    for name, spec in features.items():
        where = f"features[{name!r}]"
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigError(f"{where}: a feature name must be a non-empty string without '/'")
        if name in DEFAULT_FEATURES or name == "task":
            raise ConfigError(f"{where}: {name!r} is filled in by the recorder; remove it from features")
        if not isinstance(spec, Mapping) or "dtype" not in spec or "shape" not in spec:
            raise ConfigError(f"{where} = {spec!r}: must be a dict with 'dtype' and 'shape'")
        dtype, shape = spec["dtype"], spec["shape"]
        if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ConfigError(f"{where}['shape'] = {shape!r}: must be a list of positive integers")
        depth = dtype == "video" and is_depth_info(spec.get("info"))
        if depth:
            if len(shape) != 3 or shape[2] != 1:
                raise ConfigError(f"{where}['shape'] = {list(shape)}: a depth feature (info.is_depth_map) is "
                                  "[height, width, 1]")
            if shape[0] % 2 or shape[1] % 2:
                raise ConfigError(f"{where}['shape'] = {list(shape)}: height and width must be even")
            names = spec.get("names") or ["height", "width", "channels"]
        elif dtype == "video":
            if len(shape) != 3 or shape[2] != 3:
                hint = "; a depth camera is [height, width, 1] with 'info': {'is_depth_map': True}" \
                    if len(shape) == 3 and shape[2] == 1 else ""
                raise ConfigError(f"{where}['shape'] = {list(shape)}: a video feature is [height, width, 3]{hint}")
            if shape[0] % 2 or shape[1] % 2:
                raise ConfigError(f"{where}['shape'] = {list(shape)}: height and width must be even")
            names = spec.get("names") or ["height", "width", "channels"]
        elif dtype == "image":
            raise ConfigError(f"{where}['dtype'] = 'image': image features are not supported; use 'video'")
        elif dtype == "string":
            if tuple(shape) != (1,):
                raise ConfigError(f"{where}['shape'] = {list(shape)}: a string feature has shape [1]")
            names = spec.get("names")
        else:
            try:
                np_dtype = np.dtype(dtype)
            except TypeError as e:
                raise ConfigError(f"{where}['dtype'] = {dtype!r}: must be 'video', 'string' or a numpy "
                                  "dtype name such as 'float32'") from e
            if np_dtype.kind not in "biuf":
                raise ConfigError(f"{where}['dtype'] = {dtype!r}: numeric features must be bool, int or float")
            if len(shape) > 1:
                raise ConfigError(f"{where}['shape'] = {list(shape)}: only scalars ([1]) and vectors ([D]) "
                                  "are supported")
            names = spec.get("names")
        out.append(Feature(name, dtype, tuple(shape), names, depth))
    return tuple(out)
