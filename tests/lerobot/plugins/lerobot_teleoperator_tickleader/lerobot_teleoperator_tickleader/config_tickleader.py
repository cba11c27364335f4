from dataclasses import dataclass

from lerobot.teleoperators.config import TeleoperatorConfig


@TeleoperatorConfig.register_subclass("tickleader")
@dataclass(kw_only=True)
class TickLeaderConfig(TeleoperatorConfig):
    joints: int = 6
    """Joints j0.pos .. j<joints-1>.pos, as the tickbot robot has."""
