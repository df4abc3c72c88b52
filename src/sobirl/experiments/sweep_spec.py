"""The grid of a sweep: which deep RLHF trials it holds (environments x algorithms x any config fields x seeds) and
what each is named; :mod:`sobirl.experiments.sweep` runs them.

Every trial is one ``sobirl rlhf`` run (:class:`~sobirl.rlhf.trainer.RLHFTrainer`) with the base config's fields and
its own ``env``, ``algo``, ``seed`` and grid point: one value of each ``grid`` key (any other key of
:class:`~sobirl.rlhf.config.RLHFConfig`, e.g. ``reward_lr``). :class:`SweepSpec` is validated at construction, every
trial's config included; :func:`trial_name` names a trial's directory by its grid point
(``rlhf-Pendulum-v1-drlhf-reward_lr=0.0001-seed0``); ``sweep.yaml`` (:data:`SWEEP_FILE`) records the spec
(:meth:`SweepSpec.to_dict`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sobirl.rlhf.config import ALGOS, RLHFConfig, check_device
from sobirl.rlhf.environments import make_env
from sobirl.validation import check_choice, check_int

SWEEP_FILE = "sweep.yaml"
GRID_FIELDS = ("env", "algo", "seed")
"""The fields set per trial by their own axes: the base config's own values are not part of the grid."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")  # env ids may hold '/' or ':' (namespaces, entry points)
_UNSAFE_VALUE = re.compile(r"[^A-Za-z0-9._+-]")  # a grid value in a trial name ('+': 1e+20)

GridPoint = tuple[tuple[str, Any], ...]
"""One value of each grid key, ``((key, value), ...)`` in the grid's (sorted) order of keys; ``()`` without a
grid."""


@dataclass(frozen=True)
class Trial:
    """One run of a sweep.

    Attributes:
        name: the trial's run directory name in the sweep directory (:func:`trial_name`).
        config: the resolved config: the base config with the trial's env, algo, seed and grid point.
        point: the trial's grid point (:data:`GridPoint`); ``()`` in a sweep without a grid.
    """

    name: str
    config: RLHFConfig
    point: GridPoint = ()


def trial_name(env: str, algo: str, seed: int, point: GridPoint | Mapping[str, Any] = ()) -> str:
    """The run directory name of a trial, ``rlhf-<env>-<algo>-seed<seed>`` (``sobirl rlhf``'s default name without
    the timestamp), with its grid point's ``<key>=<value>`` before the seed, e.g.
    ``rlhf-Pendulum-v1-drlhf-reward_lr=0.0001-seed0`` (:func:`grid_label` of each value). Characters that are unsafe
    in a path (in the env id: anything but letters, digits, ``.``, ``_`` and ``-``; in a value ``+`` is kept too)
    become ``_``."""
    items = point.items() if isinstance(point, Mapping) else point
    values = "".join(f"-{key}={_UNSAFE_VALUE.sub('_', grid_label(value))}" for key, value in items)
    return f"rlhf-{_UNSAFE.sub('_', env)}-{algo}{values}-seed{seed}"


def grid_label(value: Any) -> str:
    """A grid value as people read it in trial names, tables and legends: YAML's spelling of booleans and null
    (``true``, ``null``), the shortest repr of a float (``0.0001``, ``1e-05``), a sequence's items joined by ``x``
    (``[64, 64]``: ``64x64``), anything else as ``str``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "x".join(grid_label(item) for item in value)
    return repr(value) if isinstance(value, float) else str(value)


def point_label(point: GridPoint) -> str:
    """A grid point as ``key=value, key=value`` (:func:`grid_label`); empty for ``()``."""
    return ", ".join(f"{key}={grid_label(value)}" for key, value in point)


def plain_value(value: Any) -> Any:
    """A config or grid value as a plain YAML value: tuples (of RLHFConfig's fields) become lists, recursively, so a
    value read from a config equals the one in ``sweep.yaml``."""
    return [plain_value(item) for item in value] if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class SweepSpec:
    """A grid of RLHF trials and how to run it; validated at construction (:meth:`check_runnable` checks what needs
    the machine: the device and the environments).

    Attributes:
        base: the config every trial shares; its ``env``, ``algo``, ``seed`` and the ``grid`` keys are replaced by
            each trial's.
        algos: algorithms of the grid, each one of ``config.ALGOS``, no repeats.
        seeds: seeds of the grid, integers >= 0, at least one, no repeats.
        envs: gymnasium environment ids of the grid, no repeats; None: the base config's env. Always a tuple after
            construction.
        workers: trials running at the same time, each in its own process (>= 1).
        max_retries: further attempts of a failed trial before it is reported as failed (>= 0).
        grid: further axes of the grid: a config key (any key of ``RLHFConfig.from_dict``, not ``env``, ``algo`` or
            ``seed``, which have their own) -> its values (at least one, no repeats, each valid in its trials' configs);
            every combination of one value per key is a grid point. None or empty: no further axis. After
            construction a dict of tuples (lists in a value, e.g. ``reward_hidden``, stay lists), keys sorted (the
            order of the keys in trial names, whatever order they were given in).
    """

    base: RLHFConfig
    algos: tuple[str, ...]
    seeds: tuple[int, ...]
    envs: tuple[str, ...] | None = None
    workers: int = 1
    max_retries: int = 1
    grid: Mapping[str, Sequence[Any]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.base, RLHFConfig):
            raise TypeError(f"base must be an RLHFConfig, got {type(self.base).__name__}")
        envs = (self.base.env,) if self.envs is None else self.envs
        for name, values in (("algos", self.algos), ("seeds", self.seeds), ("envs", envs)):
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):  # "sobirl" is not 6 algos
                raise TypeError(f"{name} must be a sequence, got {type(values).__name__}")
            values = tuple(values)  # YAML and the CLI give lists
            object.__setattr__(self, name, values)
            if not values:
                raise ValueError(f"{name} must hold at least one value")
            repeated = sorted({repr(v) for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{name} must not repeat a value, got {', '.join(repeated)} more than once")
        for algo in self.algos:
            check_choice("algo", algo, ALGOS)
        for seed in self.seeds:
            check_int("seed", seed)
        for env in self.envs or ():
            if not isinstance(env, str) or not env:
                raise ValueError(f"envs must hold gymnasium environment ids, got {env!r}")
        check_int("workers", self.workers, low=1)
        check_int("max_retries", self.max_retries)
        object.__setattr__(self, "grid", self._checked_grid())
        names = [trial.name for trial in self.trials()]  # also validates every trial's config
        if len(set(names)) < len(names):
            raise ValueError(f"envs {', '.join(self.envs)} give the same trial directory names; rename or drop one")

    def _checked_grid(self) -> dict[str, tuple[Any, ...]]:
        """``grid`` validated (see the class docstring) as a dict of tuples, keys sorted.

        Raises:
            TypeError: ``grid`` is not a mapping, or a key's values are not a sequence.
            ValueError: a key that is one of env, algo, seed, a key without values, or a repeated value. An unknown
                key (a key ``RLHFConfig.from_dict`` does not take) and a value the config rejects are reported by
                :meth:`trials`, in the config of the first trial that has them (whose name holds the key and the
                value; the config's message names the valid keys or values), as a value may be valid only with
                another key's value (``initial_pairs`` with ``total_pairs``).
        """
        if self.grid is None:
            return {}
        if not isinstance(self.grid, Mapping):
            raise TypeError(f"grid must be a mapping of config keys to their values, got {type(self.grid).__name__}")
        grid: dict[str, tuple[Any, ...]] = {}
        for key, values in self.grid.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"grid keys must be config keys, got {key!r}")
            if key in GRID_FIELDS:
                raise ValueError(
                    f"grid key {key!r} is an axis of its own: give it as the sweep's {key}s, not in the grid"
                )
            if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
                raise TypeError(f"grid {key} must be a sequence of values, got {type(values).__name__}")
            values = tuple(plain_value(v) for v in values)
            if not values:
                raise ValueError(f"grid {key} must hold at least one value")
            repeated = sorted({grid_label(v) for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"grid {key} must not repeat a value, got {', '.join(repeated)} more than once")
            grid[key] = values  # the values are checked in each trial's config (trials()), with the other keys'
        return dict(sorted(grid.items()))  # one order, so a grid point has one name however the keys were given

    def points(self) -> tuple[GridPoint, ...]:
        """The grid points, every combination of one value per ``grid`` key (the last key varying fastest);
        ``((),)`` without a grid."""
        grid = self.grid or {}
        return tuple(tuple(zip(grid, values, strict=True)) for values in itertools.product(*grid.values()))

    def trials(self) -> tuple[Trial, ...]:
        """The grid, seeds outermost, then envs, then grid points (:meth:`points`), then algos: a sweep stopped
        early still has every algorithm on the first seeds, which is what a comparison needs first.

        Raises:
            ValueError: a trial's config is invalid (e.g. an estimator the algorithm does not take), naming it.
        """
        trials = []
        for seed in self.seeds:
            for env in self.envs or ():
                for point in self.points():
                    for algo in self.algos:
                        name = trial_name(env, algo, seed, point)
                        try:
                            config = self.base.replace(**dict(point), env=env, algo=algo, seed=seed)
                        except (ValueError, TypeError) as err:
                            raise type(err)(f"trial {name}: {err}") from err
                        trials.append(Trial(name, config, point))
        return tuple(trials)

    def check_runnable(self) -> None:
        """Check what the trials need of this machine: the device (of each grid point) and every environment, made
        and closed once per (env, grid point) (its time limit, spaces and fragment length depend on the config).

        Raises:
            ValueError: the device is unavailable, or an env id is unknown or unsuitable for a grid point's config
                (naming the env and the problem, see ``trainer.make_env``; the grid point's values when it has any).
            gymnasium.error.DependencyNotInstalled: an environment needs an uninstalled extra (MuJoCo, Atari).
        """
        for point in self.points():
            config = self.base.replace(**dict(point), algo=self.algos[0])  # valid: trials() checked it
            try:
                check_device(config.device)
                for env in self.envs or ():
                    make_env(config.replace(env=env)).close()
            except ValueError as err:
                if not point:
                    raise
                raise ValueError(f"grid point {point_label(point)}: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        """The sweep as plain YAML values (``sweep.yaml``); ``workers`` is left out: it says how this machine runs
        the sweep, not what the sweep is."""
        return {
            "base": self.base.to_dict(),
            "algos": list(self.algos),
            "seeds": list(self.seeds),
            "envs": list(self.envs or ()),
            "grid": {key: list(values) for key, values in (self.grid or {}).items()},
            "max_retries": self.max_retries,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, workers: int = 1) -> SweepSpec:
        """The spec in a mapping such as :meth:`to_dict`'s (``envs``, ``grid`` and ``max_retries`` optional).

        Raises:
            ValueError: a key is unknown or missing, or a value is invalid.
        """
        keys = ("base", "algos", "seeds", "envs", "grid", "max_retries")
        unknown = [str(k) for k in values if k not in keys]
        if unknown:
            raise ValueError(f"unknown sweep keys {', '.join(unknown)}; valid: {', '.join(keys)}")
        missing = [k for k in ("base", "algos", "seeds") if k not in values]
        if missing:
            raise ValueError(f"a sweep needs the keys {', '.join(missing)}")
        if not isinstance(values["base"], Mapping):
            raise ValueError(f"base must be a mapping of config fields, got {type(values['base']).__name__}")
        return cls(
            base=RLHFConfig.from_dict(values["base"]),
            algos=values["algos"],
            seeds=values["seeds"],
            envs=values.get("envs"),
            workers=workers,
            max_retries=values.get("max_retries", 1),
            grid=values.get("grid"),
        )
