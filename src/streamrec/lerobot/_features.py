"""Dataset features from a robot and LeRobot's processor pipelines, without `lerobot.datasets`.

LeRobot 0.6's `lerobot.datasets` cannot be imported beside streamrec: it needs PyAV < 16 (it uses
`av.option`, gone in PyAV 16), streamrec needs PyAV >= 18. Its two helpers a recording loop calls are
written here again, to the same behaviour: the pipeline transforms the robot's feature spec, each
entry is sorted into action, state or camera, and LeRobot's own `hw_to_dataset_features` (from
`lerobot.utils.feature_utils`, which imports fine) makes the dataset features.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any


def create_initial_features(action: Mapping[str, Any] | None = None,
                            observation: Mapping[str, Any] | None = None) -> dict[Any, dict[str, Any]]:
    """The spec a processor pipeline transforms: {ACTION: action features, OBSERVATION: observation features}."""
    from lerobot.configs import PipelineFeatureType

    return {PipelineFeatureType.ACTION: dict(action or {}), PipelineFeatureType.OBSERVATION: dict(observation or {})}


def aggregate_pipeline_dataset_features(pipeline: Any, initial_features: Mapping[Any, Mapping[str, Any]], *,
                                        use_videos: bool = True, exclude_images: bool = False,
                                        patterns: Sequence[str] | None = None) -> dict[str, dict]:
    """Dataset features for what `pipeline` makes of `initial_features`, as LeRobot's function of the same name.

    An observation entry is a camera when its value is a 3-tuple (a shape) or its key names the
    images group; `patterns` (regular expressions) keep only matching action and state entries.
    """
    from lerobot.configs import PipelineFeatureType
    from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE, OBS_STR
    from lerobot.utils.feature_utils import hw_to_dataset_features

    kept = tuple(re.compile(p) for p in patterns) if patterns is not None else None
    # "action.", "observation.state.", "observation.images." and their last parts: stripped from names.
    prefixes = tuple(f"{token}." for group in (ACTION, OBS_STATE, OBS_IMAGES)
                     for token in (group, group.split(".")[-1]))
    images = OBS_IMAGES.split(".")[-1]
    groups: dict[str, dict[str, Any]] = {ACTION: {}, OBS_STR: {}}
    for kind, entries in pipeline.transform_features(initial_features).items():
        if kind not in (PipelineFeatureType.ACTION, PipelineFeatureType.OBSERVATION):
            continue
        action = kind == PipelineFeatureType.ACTION
        for key, value in entries.items():
            camera = not action and ((isinstance(value, tuple) and len(value) == 3)
                                     or key.startswith((f"{OBS_IMAGES}.", f"{images}.")) or f".{images}." in key)
            if camera and exclude_images:
                continue
            if not camera and kept is not None and not any(p.search(key) for p in kept):
                continue
            name = next((key[len(p):] for p in prefixes if key.startswith(p)), key)
            groups[ACTION if action else OBS_STR][name] = value
    features: dict[str, dict] = {}
    for prefix in (ACTION, OBS_STR):
        if groups[prefix]:
            features.update(hw_to_dataset_features(groups[prefix], prefix, use_videos))
    return features


def sanity_check_dataset_robot_compatibility(dataset: Any, robot: Any, fps: int, features: Mapping[str, Any]) -> None:
    """Raise ValueError naming every difference between a dataset and this recording (robot type,
    fps, features; the features' `info` blocks are not compared), as LeRobot's check does."""
    from ._writer import DEFAULT_FEATURES

    def plain(spec: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items() if k != "info"}

    ours = {name: plain(spec) for name, spec in {**features, **DEFAULT_FEATURES}.items()}
    theirs = {name: plain(spec) for name, spec in dataset.features.items()}
    problems = []
    if dataset.meta.robot_type != robot.robot_type:
        problems.append(f"robot_type: expected {robot.robot_type!r}, the dataset has {dataset.meta.robot_type!r}")
    if dataset.fps != fps:
        problems.append(f"fps: expected {fps}, the dataset has {dataset.fps}")
    for name in sorted(set(ours) | set(theirs)):
        if ours.get(name) != theirs.get(name):
            problems.append(f"features[{name!r}]: expected {ours.get(name)}, the dataset has {theirs.get(name)}")
    if problems:
        raise ValueError("the dataset does not match this recording:\n" + "\n".join(problems))
