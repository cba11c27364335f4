from typing import Any

from lerobot.teleoperators.teleoperator import Teleoperator

from .config_tickleader import TickLeaderConfig


class TickLeader(Teleoperator):
    """Each action tells which call made it: j<i>.pos = 1000 * i + k on the k-th get_action() (k from 0).

    Integers below 2**24, so float32 columns hold them exactly.
    """

    config_class = TickLeaderConfig
    name = "tickleader"

    def __init__(self, config: TickLeaderConfig):
        super().__init__(config)
        self.config = config
        self._connected = False
        self.calls = 0

    @property
    def action_features(self) -> dict[str, type]:
        return {f"j{i}.pos": float for i in range(self.config.joints)}

    @property
    def feedback_features(self) -> dict:
        return {}

    @property
    def is_connected(self) -> bool:
        return self._connected

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def get_action(self) -> dict[str, Any]:
        if not self._connected:
            raise ConnectionError("tickleader is not connected")
        k = self.calls
        self.calls += 1
        return {f"j{i}.pos": float(1000 * i + k) for i in range(self.config.joints)}

    def send_feedback(self, feedback: dict[str, Any]) -> None:
        pass

    def disconnect(self) -> None:
        self._connected = False
