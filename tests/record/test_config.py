"""The recorder's settings: one set of names and defaults for Python and the command line, checked when built."""

from __future__ import annotations

import dataclasses

import pytest

from helpers.recording import FPS, features
from streamrec import ConfigError, DatasetRecorder, QueueFullPolicy
from streamrec.cli._record import DatasetSection
from streamrec.record import RecorderConfig, RecordingOptions


def test_a_misspelt_setting_names_the_right_one(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"create\(\): unknown setting 'encoder_queue_size'; did you mean "
                                          r"'encoder_queue_maxsize'\?"):
        DatasetRecorder.create(tmp_path / "ds", FPS, features(), encoder_queue_size=3)
    assert not (tmp_path / "ds").exists()
    with pytest.raises(ConfigError, match=r"resume\(\): unknown setting 'chunks_size'"):
        DatasetRecorder.resume(tmp_path / "ds", chunks_size=10)  # the dataset's own, not settable on resume


def test_options_are_checked_with_the_class_that_holds_them() -> None:
    with pytest.raises(ConfigError, match=r"RecordingOptions.encoder_timeout_s = 0: must be a number of seconds > 0"):
        RecordingOptions(encoder_timeout_s=0)
    with pytest.raises(ConfigError, match=r"DatasetSection.encoder_threads = 0: must be None"):
        DatasetSection(root="x", single_task="t", encoder_threads=0)
    assert RecordingOptions(queue_full_policy="block").queue_full_policy is QueueFullPolicy.BLOCK


def test_the_command_line_and_python_share_every_default() -> None:
    # The command's --dataset section inherits the options: same names, same defaults, nothing retyped.
    options = {f.name: f for f in dataclasses.fields(RecordingOptions)}
    for cls in (RecorderConfig, DatasetSection):
        mine = {f.name: f for f in dataclasses.fields(cls)}
        for name, f in options.items():
            assert mine[name].default == f.default and mine[name].default_factory == f.default_factory, (cls, name)
