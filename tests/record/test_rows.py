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
