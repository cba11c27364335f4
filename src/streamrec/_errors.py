"""Exception types. Each also derives from the builtin a caller would naturally catch."""

from __future__ import annotations


class StreamrecError(Exception):
    """Base class of every error streamrec raises on purpose."""


class ConfigError(StreamrecError, ValueError):
    """A setting is invalid; the message names the field, the value and what is allowed."""


class FrameError(StreamrecError, ValueError):
    """A frame passed to `add_frame` does not match the dataset's features.

    Raised before anything is queued: the open episode is unchanged and still usable.
    """


class WorkerError(StreamrecError, RuntimeError):
    """A background worker (an encoder) failed. The original exception is the `__cause__`.

    Episodes saved before the failure stay intact; the recorder refuses further frames.
    """


class DatasetError(StreamrecError, RuntimeError):
    """The dataset on disk is not in a state this operation accepts (e.g. not empty, not ours)."""


class EncoderRestarted(WorkerError):
    """An encoder process died or hung and a new one took over.

    The episode in progress was lost (saved episodes are intact); the recorder is usable:
    record the episode again.
    """
