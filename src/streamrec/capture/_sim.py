"""The simulated ALOHA scene (MuJoCo through gym-aloha): its cameras, and its arms as the robot."""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._errors import ConfigError
from ._configs import SIM_ENVS, CameraConfig, SimCameraConfig
from ._robot import RobotSource
from ._source import CameraSource, SourceError

log = logging.getLogger("streamrec")


_GL_BACKENDS = ("egl", "osmesa")
"""Headless OpenGL for MuJoCo, in the order tried: EGL (a GPU's, or Mesa's software renderer), then OSMesa."""
_GL_PROBE = "import mujoco; context = mujoco.GLContext(16, 16); context.make_current(); context.free()"
_GL_PROBE_TIMEOUT_S = 60.0


def choose_gl_backend() -> str:
    """Set MUJOCO_GL (and PYOPENGL_PLATFORM) for rendering without a window, before MuJoCo is imported.

    A MUJOCO_GL set by the user is kept. Otherwise, on Linux, each of `_GL_BACKENDS` is tried in a
    short-lived child process, because the choice is fixed once MuJoCo and PyOpenGL are imported: a
    backend that failed in this process could not be swapped for the next one.

    Returns:
        The backend in use.

    Raises:
        SourceError: no backend could make a context; the message gives each one's error.
    """
    import platform

    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if chosen or platform.system() != "Linux":
        return chosen or "default"
    if "mujoco" in sys.modules:  # already imported without MUJOCO_GL: too late to choose
        return "default"
    errors = []
    for backend in _GL_BACKENDS:
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        try:
            probe = subprocess.run([sys.executable, "-c", _GL_PROBE], env=env, capture_output=True, text=True,
                                   timeout=_GL_PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            errors.append(f"{backend}: no context within {_GL_PROBE_TIMEOUT_S:g} s")
            continue
        if probe.returncode == 0:
            os.environ["MUJOCO_GL"] = os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
        # The error is the traceback's last line; noise from destructors at exit may follow it.
        lines = probe.stderr.split("Exception ignored in")[0].strip().splitlines()
        errors.append(f"{backend}: {lines[-1] if lines else f'exit code {probe.returncode}'}")
    raise SourceError("no OpenGL for rendering without a window: " + "; ".join(errors) + ". Install Mesa's EGL "
                      "(apt-get install libegl1 libgl1-mesa-dri) or OSMesa (apt-get install libosmesa6), or set "
                      "MUJOCO_GL to a backend that works here")


_SIM_MODULES = ("gym_aloha", "gymnasium", "mujoco", "dm_control")


def _import_sim(camera: str) -> Any:
    """gym-aloha (with MuJoCo and dm_control) is optional: imported when the first sim camera opens.

    Whether they are installed is checked before anything is imported, since the OpenGL backend
    must be chosen before MuJoCo is (see `choose_gl_backend`).
    """
    import importlib.util

    missing = [name for name in _SIM_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise SourceError(f"camera {camera!r} (sim): the simulation needs gym-aloha and MuJoCo, not installed "
                          f"(no module {', '.join(missing)}); pip install 'streamrec[sim]'")
    choose_gl_backend()
    try:
        import gym_aloha
        import gymnasium
        import mujoco
        from gym_aloha import constants, utils
        from gym_aloha.tasks import sim
    except ImportError as e:
        raise SourceError(f"camera {camera!r} (sim): the simulation needs gym-aloha and MuJoCo, which are not "
                          f"installed ({e}); pip install 'streamrec[sim]'") from e
    return gym_aloha, gymnasium, mujoco, constants, utils, sim


class SimWorld:
    """One simulated ALOHA scene shared by the sim cameras of a recording, and its two arms.

    Each tick the cameras render the current state (a scene camera is rendered once per tick, however
    many camera keys show it), then `SimRobot.read()` takes the state, the command the scripted
    motion sends next, and steps the physics by one tick: `substeps` physics steps, the nearest to
    1/fps s of simulated time, so that the arms move at the speed a viewer of the video expects.

    The gym-aloha environment provides the model, the task (how an action drives the joints and
    grippers, where objects start) and the joint readout; its own `step()`/`reset()` are not used:
    they render three fixed 640x480 views each call (~200 ms here without a GPU) that would be
    thrown away, and step a fixed 20 ms whatever the recording's fps.

    Opened by the first camera that attaches, closed when the last one detaches.

    Args:
        env_id: A key of `SIM_ENVS`.
        seed: Episode k places the objects and moves the arms from seed + k.
        fps: Ticks per second of the recording.
    """

    _RAMP_S = 2.0
    """The motion grows from the home pose over this many seconds, so that an episode starts without a jump."""
    _FREQ_HZ = (0.08, 0.3)
    """Range of each joint's oscillation frequency: slow, like a person teleoperating."""
    _AMPLITUDE = np.array([0.35, 0.2, 0.2, 0.4, 0.35, 0.6, 0.45] * 2)
    """Peak offset from the home pose per action (radians; the gripper's in its 0..1 opening)."""

    def __init__(self, env_id: str, seed: int, fps: int) -> None:
        self.env_id = env_id
        self.seed = seed
        self.fps = fps
        self._users = 0
        self._renderers: dict[tuple[int, int], Any] = {}
        self._frames: dict[tuple[str, int, int, bool], np.ndarray] = {}
        self._fresh: set[tuple[str, int, int, bool]] = set()
        self.tick = 0
        self.episode = 0
        self.gl_backend = ""

    # -- lifecycle ---------------------------------------------------------------------------------

    def attach(self, camera: str) -> None:
        """A camera starts using the world; the first one opens it (SourceError if it cannot)."""
        if self._users == 0:
            self._open(camera)
        self._users += 1

    def detach(self) -> None:
        self._users -= 1
        if self._users == 0:
            self._close()

    def _open(self, camera: str) -> None:
        _, gymnasium, self._mujoco, constants, self._utils, self._sim = _import_sim(camera)
        self.gl_backend = os.environ.get("MUJOCO_GL", "default")
        aloha = gymnasium.make(self.env_id, disable_env_checker=True).unwrapped
        self._env = aloha
        self._physics = aloha._env.physics  # the dm_control environment inside (see the class docstring)
        self._task = aloha._env.task
        self._task_name = SIM_ENVS[self.env_id]
        self.state_names = list(constants.JOINTS)
        self.action_names = list(constants.ACTIONS)
        timestep = float(self._physics.model.opt.timestep)
        self.substeps = max(1, round(1.0 / (self.fps * timestep)))
        self.tick_s = self.substeps * timestep
        arm = list(constants.START_ARM_POSE[:6])
        gripper = float(constants.normalize_puppet_gripper_position(constants.START_ARM_POSE[6]))
        self._home = np.array(arm + [gripper] + arm + [gripper])
        self.reset(0)

    def _close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self._frames.clear()
        self._env.close()

    @property
    def cameras(self) -> list[str]:
        """Names of the scene's cameras."""
        model = self._physics.model
        return [model.id2name(i, "camera") for i in range(model.ncam)]

    # -- per episode and per tick -----------------------------------------------------------------

    def reset(self, episode: int) -> None:
        """Arms to the home pose, objects to the places drawn from seed + episode; the motion starts over."""
        seed = self.seed + episode
        if self._task_name == "insertion":
            pose = np.concatenate(self._utils.sample_insertion_pose(seed))
        else:
            pose = self._utils.sample_box_pose(seed)
        self._sim.BOX_POSE[0] = pose  # gym-aloha's tasks read the objects' start pose from here
        with self._physics.reset_context():
            self._task.initialize_episode(self._physics)
        rng = np.random.default_rng(seed)
        self._freq_hz = rng.uniform(*self._FREQ_HZ, self._home.shape)
        self._phase = rng.uniform(0, 2 * math.pi, self._home.shape)
        self.episode = episode
        self.tick = 0
        self._fresh.clear()

    def render(self, camera: str, width: int, height: int, shadows: bool, out: np.ndarray | None = None
               ) -> np.ndarray:
        """The scene seen by `camera` now; rendered on the first call of the tick, then shared.

        With `out`, the image ends up there (rendered into it, or copied when another camera of the
        same view rendered it this tick); otherwise it is valid until the next tick's render of the view.
        """
        key = (camera, width, height, shadows)
        if out is not None:
            if key in self._fresh:
                np.copyto(out, self._frames[key])
                return out
            self._render(key, out)
            self._frames[key] = out  # shared with the other cameras of this view, for this tick only
            return out
        if key not in self._fresh:
            frame = self._frames.get(key)
            if frame is None or not frame.flags.owndata:  # not its own array: a queue buffer lent earlier
                frame = self._frames[key] = np.empty((height, width, 3), np.uint8)
            self._render(key, frame)
        return self._frames[key]

    def _render(self, key: tuple[str, int, int, bool], out: np.ndarray) -> None:
        camera, width, height, shadows = key
        renderer = self._renderers.get((width, height))
        if renderer is None:
            model = self._physics.model.ptr
            # The offscreen framebuffer must hold the image; the model's own is 640x480.
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
            model.vis.global_.offheight = max(model.vis.global_.offheight, height)
            renderer = self._renderers[(width, height)] = self._mujoco.Renderer(model, height, width)
        renderer.update_scene(self._physics.data.ptr, camera=camera)
        renderer.scene.flags[self._mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
        renderer.render(out=out)
        self._fresh.add(key)

    def state(self) -> np.ndarray:
        """Joint positions of both arms, grippers as their 0..1 opening (gym-aloha's `qpos` observation)."""
        return np.asarray(self._task.get_qpos(self._physics), np.float32)

    def action(self) -> np.ndarray:
        """What the scripted motion commands for the next tick: every joint swings smoothly about the home pose
        at its own slow frequency, growing in over the first `_RAMP_S` seconds."""
        t = (self.tick + 1) * self.tick_s
        ramp = min(1.0, t / self._RAMP_S)
        ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: no jerk when the motion starts
        target = self._home + ramp * self._AMPLITUDE * np.sin(2 * math.pi * self._freq_hz * t + self._phase)
        for gripper in (6, 13):
            target[gripper] = min(1.0, max(0.0, target[gripper]))
        return target.astype(np.float32)

    def step(self, action: np.ndarray) -> None:
        """Send `action` and advance the physics by one tick."""
        self._task.before_step(np.asarray(action, np.float64), self._physics)
        self._physics.step(self.substeps)
        self._task.after_step(self._physics)
        self.tick += 1
        self._fresh.clear()


def sim_world(cameras: Mapping[str, CameraConfig], fps: int) -> SimWorld | None:
    """The one simulation the sim cameras among `cameras` share (None without sim cameras).

    Raises:
        ConfigError: the sim cameras disagree on `env` or `seed`.
    """
    sims = {name: c for name, c in cameras.items() if isinstance(c, SimCameraConfig)}
    if not sims:
        return None
    first_name, first = next(iter(sims.items()))
    for name, config in sims.items():
        for setting in ("env", "seed"):
            if getattr(config, setting) != getattr(first, setting):
                raise ConfigError(f"cameras.{name}.{setting} = {getattr(config, setting)!r}: sim cameras share one "
                                  f"simulation, so it must equal cameras.{first_name}.{setting} = "
                                  f"{getattr(first, setting)!r}")
    return SimWorld(first.env, first.seed, fps)


class SimSource(CameraSource):
    """Renders one camera of a `SimWorld` each tick (see `SimWorld` for who steps it).

    Args:
        name: The camera's name.
        config: Its `SimCameraConfig`.
        world: The simulation shared with the recording's other sim cameras; None gives the camera
            one of its own, at 30 fps.
    """

    config: SimCameraConfig

    def __init__(self, name: str, config: SimCameraConfig, world: SimWorld | None = None) -> None:
        super().__init__(name, config)
        self.world = world if world is not None else SimWorld(config.env, config.seed, fps=30)

    @property
    def camera(self) -> str:
        return self.config.camera or self.name

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.config.height, self.config.width, 3)

    def _open_impl(self) -> None:
        self.world.attach(self.name)
        if self.camera not in self.world.cameras:
            self.world.detach()
            hint = "" if self.config.camera else " (set `camera:` in the spec)"
            raise SourceError(f"camera {self.name!r} (sim): the scene has no camera {self.camera!r}; it has "
                              f"{self.world.cameras}{hint}")

    def read(self) -> np.ndarray:
        c = self.config
        return self.world.render(self.camera, c.width, c.height, c.shadows)

    def read_into(self, out: np.ndarray) -> float:
        """Renders straight into `out` (a queue buffer)."""
        c = self.config
        self.world.render(self.camera, c.width, c.height, c.shadows, out=out)
        return time.time()

    def _close_impl(self) -> None:
        self.world.detach()




class SimRobot(RobotSource):
    """The arms of a `SimWorld`: each `read()` returns the joint state the cameras just showed and the
    command the scripted motion sends, then steps the simulation with that command.

    So row i holds the image and state at tick i and the action taken from there, as a policy would
    see them; the next row shows where that action led.
    """

    def __init__(self, world: SimWorld) -> None:
        self.world = world

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        w = self.world
        return {"observation.state": {"dtype": "float32", "shape": [len(w.state_names)], "names": w.state_names},
                "action": {"dtype": "float32", "shape": [len(w.action_names)], "names": w.action_names}}

    def start_episode(self, index: int) -> None:
        self.world.reset(index)

    def read(self) -> dict[str, np.ndarray]:
        state = self.world.state()
        action = self.world.action()
        self.world.step(action)
        return {"observation.state": state, "action": action}
