"""The open episode's rows on their own: what `add_frame` accepts, converts and refuses, before anything is queued."""

from __future__ import annotations

import numpy as np
import pytest

from streamrec import FrameError
from streamrec.dataset._features import parse_features
from streamrec.record._rows import EpisodeRows

FEATURES = parse_features({
    "observation.images.top": {"dtype": "video", "shape": [4, 6, 3]},
    "observation.state": {"dtype": "float32", "shape": [3]},
    "observation.count": {"dtype": "int32", "shape": [1]},
})


def row(**values):
    out = {"observation.images.top": np.zeros((4, 6, 3), np.uint8), "observation.state": np.zeros(3, np.float32),
           "observation.count": 0, "task": "t"}
    return out | values


def test_values_convert_within_their_kind() -> None:
    rows = EpisodeRows(FEATURES)
    checked = rows.check(row(**{"observation.state": np.arange(3, dtype=np.float64), "observation.count": 7}))
    assert checked["observation.state"].dtype == np.float32 and checked["observation.state"].tolist() == [0, 1, 2]
    assert checked["observation.count"].dtype == np.int32 and checked["observation.count"].tolist() == [7]
    with pytest.raises(FrameError, match=r"'observation.count' must have dtype int32 .* got float64"):
        rows.check(row(**{"observation.count": 1.5}))


def test_an_integer_that_does_not_fit_is_refused_not_wrapped() -> None:
    rows = EpisodeRows(FEATURES)
    with pytest.raises(FrameError, match=r"'observation.count' element 0 = 1099511627776 does not fit its dtype "
                                         r"int32 \(-2147483648..2147483647\)"):
        rows.check(row(**{"observation.count": np.int64(2**40)}))
    assert rows.frames == 0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_is_refused_naming_the_element(bad: float) -> None:
    rows = EpisodeRows(FEATURES)
    with pytest.raises(FrameError, match=rf"'observation.state' element 1 is {bad}: numeric features must be finite"
                                         r".*allow_nonfinite=True"):
        rows.check(row(**{"observation.state": np.array([0.0, bad, 2.0], np.float32)}))
    assert rows.frames == 0 and rows.nonfinite == {}


def test_with_allow_nonfinite_they_are_recorded_and_counted() -> None:
    rows = EpisodeRows(FEATURES, allow_nonfinite=True)
    for state in ([np.nan, 1, 2], [0, 1, 2], [np.inf, np.nan, 5]):
        values = rows.check(row(**{"observation.state": np.array(state, np.float32)}))
        rows.append(values, "t")
    assert rows.nonfinite == {"observation.state": 3}
    _, stats = rows.table(episode_index=0, first_index=0, tasks={"t": 0}, fps=30)
    state = stats["observation.state"]
    assert state["min"].tolist() == [0.0, 1.0, 2.0] and state["max"].tolist() == [0.0, 1.0, 5.0]  # finite ones only
    assert all(np.isfinite(v).all() for v in state.values())


def test_a_loop_that_refills_one_array_every_tick_keeps_each_ticks_values() -> None:
    rows = EpisodeRows(FEATURES)
    state = np.zeros(3, np.float32)  # the robot driver's buffer, overwritten in place
    for tick in range(4):
        state[:] = tick
        rows.append(rows.check(row(**{"observation.state": state})), "t")
    table, _ = rows.table(episode_index=0, first_index=0, tasks={"t": 0}, fps=30)
    assert [v[0] for v in table.column("observation.state").to_pylist()] == [0, 1, 2, 3]
