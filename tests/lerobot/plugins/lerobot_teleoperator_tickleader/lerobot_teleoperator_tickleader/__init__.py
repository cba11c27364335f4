"""A leader arm for tests: action k (the k-th call of get_action) is j<i>.pos = 1000 * i + k."""

from .config_tickleader import TickLeaderConfig
from .tickleader import TickLeader

__all__ = ["TickLeader", "TickLeaderConfig"]
