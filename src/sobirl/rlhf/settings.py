"""Every setting of ``sobirl rlhf``, documented from one source, and the shipped configs by environment.

The settings are :class:`~sobirl.rlhf.config.RLHFConfig`'s fields and, given flat beside them, the update rules'
``Config`` fields (:data:`sobirl.rlhf.rules.RULES`) and :class:`~sobirl.rlhf.successor.CriticConfig`'s. Their
defaults are the dataclasses' and their descriptions the ``Attributes:`` sections of the dataclasses' docstrings:
:func:`settings` reads both, so ``sobirl rlhf --help`` (:mod:`sobirl.cli`) can never disagree with the code.
:data:`GROUPS` only sorts the config's fields into the help's groups.

:data:`ENV_CONFIGS` maps environment ids to the shipped config files (``configs/*.yaml``) that ``sobirl rlhf --env
ID`` starts from when no ``--config`` is given (the RL Zoo's per-environment hyperparameters).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sobirl.rlhf.config import RLHFConfig
from sobirl.rlhf.rules import RULES
from sobirl.rlhf.successor import CriticConfig

RULE_GROUP = "update rule"
CRITIC_GROUP = "critic"

GROUPS: dict[str, tuple[str, ...]] = {
    "run": ("algo", "total_steps", "seed", "device", "threads"),
    "environment": (
        "env",
        "env_kwargs",
        "wrappers",
        "max_episode_steps",
        "absorbing_termination",
        "absorbing_steps",
        "frame_stack",
        "terminal_on_life_loss",
    ),
    "preferences": (
        "fragment_length",
        "total_pairs",
        "initial_pairs",
        "schedule",
        "hyperbolic_rate",
        "dataset_capacity",
        "label_temperature",
        "label_noise",
        "labeller",
        "labeller_async",
        "label_host",
        "label_port",
        "label_token",
        "frame_steps",
        "frame_width",
        "recorder_steps",
    ),
    "reward net": (
        "reward_update_interval",
        "reward_epochs",
        "initial_reward_epochs",
        "reward_batch_size",
        "reward_lr",
        "reward_weight_decay",
        "reward_hidden",
        "reward_normalize",
        "reward_state_only",
        "clip",
    ),
    RULE_GROUP: ("exploration_pairs",),  # and every rule's Config field
    CRITIC_GROUP: (),  # CriticConfig's fields
    "SAC": (
        "sac_learning_starts",
        "sac_buffer_size",
        "sac_batch_size",
        "sac_learning_rate",
        "sac_gamma",
        "sac_ent_coef",
        "sac_net_arch",
        "sac_train_freq",
        "sac_tau",
        "sac_target_update_interval",
        "sac_share_features_extractor",
        "sac_target_entropy_scale",
        "sac_kwargs",
    ),
    "evaluation": (
        "eval_interval",
        "eval_episodes",
        "eval_deterministic",
        "held_out_pairs",
        "held_out_episodes",
        "return_window",
    ),
    "checkpoints": ("checkpoint_interval", "keep_checkpoints"),
}
"""The help's groups, in order, and the :class:`RLHFConfig` fields in each (the rules' and the critic's settings
join :data:`RULE_GROUP` and :data:`CRITIC_GROUP`)."""

_SECTION_FIELDS = ("rule", "critic")
"""RLHFConfig fields that hold a component's settings; their settings are listed instead."""

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs"
"""The shipped configs (the repository's ``configs/``; absent from an installed wheel)."""

ENV_CONFIGS: dict[str, str] = {
    "Pendulum-v1": "pendulum-cpu.yaml",
    "CartPole-v1": "cartpole-cpu.yaml",
    "HalfCheetah-v5": "halfcheetah-cpu.yaml",
    "ALE/BeamRider-v5": "beamrider-cpu.yaml",
}
"""Environment id -> the shipped config in :data:`CONFIG_DIR` that ``sobirl rlhf --env ID`` starts from (the CPU-scale
one; the paper-scale configs are chosen with ``--config``)."""


@dataclass(frozen=True)
class Setting:
    """One flat config key of ``sobirl rlhf``.

    Attributes:
        name: the key (``--set NAME=...``, ``--name-with-dashes``).
        group: its group in :data:`GROUPS`.
        default: its default as the YAML value a user would type (``null``, ``true``, ``[256, 256]``).
        doc: its description from the dataclass docstring, on one line.
    """

    name: str
    group: str
    default: str
    doc: str

    @property
    def flag(self) -> str:
        """The command-line option, ``--name-with-dashes``."""
        return "--" + self.name.replace("_", "-")


def yaml_value(value: Any) -> str:
    """``value`` as a one-line YAML value (tuples as lists)."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, Mapping):
        value = dict(value)
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes`` sections of the docstrings of ``cls`` and its bases as ``{name: one-line description}``
    (a subclass's description replaces its base's). A section starts at a line beginning ``Attributes`` and ending
    with ``:`` (``Attributes:``, ``Attributes (besides ...):``); its entries are ``name: text`` lines at the first
    entry's indentation, continued by more indented lines, up to a blank or less indented line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        docs.update(_own_attribute_docs(klass.__dict__.get("__doc__") or ""))
    return docs


def _own_attribute_docs(docstring: str) -> dict[str, str]:
    docs: dict[str, str] = {}
    lines = docstring.splitlines()
    start = next((i for i, line in enumerate(lines) if _is_header(line)), None)
    if start is None:
        return docs
    indent, name = None, None
    for line in lines[start + 1 :]:
        stripped = line.strip()
        width = len(line) - len(line.lstrip())
        if not stripped or (indent is not None and width < indent):
            break
        head, sep, text = stripped.partition(":")
        if (indent is None or width == indent) and sep and head.isidentifier():
            indent, name = width, head
            docs[name] = text.strip()
        elif name is not None and width > (indent or 0):
            docs[name] += " " + stripped
        else:
            break
    return docs


def _is_header(line: str) -> bool:
    stripped = line.strip()
    return stripped.startswith("Attributes") and stripped.endswith(":")


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory()  # type: ignore[misc]


def settings() -> list[Setting]:
    """Every setting of ``sobirl rlhf``, in :data:`GROUPS` order: the config's fields, then the rules' settings
    (naming the rules that use each where not all do, and each rule's default where they differ) and the critic's.

    Raises:
        RuntimeError: a config field that :data:`GROUPS` does not place (or places twice), so that a new field
            cannot go undocumented.
    """
    fields = {f.name: f for f in dataclasses.fields(RLHFConfig) if f.name not in _SECTION_FIELDS}
    placed = [name for names in GROUPS.values() for name in names]
    missing = [n for n in fields if n not in placed]
    extra = [n for n in placed if n not in fields or placed.count(n) > 1]
    if missing or extra:
        raise RuntimeError(f"sobirl.rlhf.settings.GROUPS misses {missing} or has unknown or repeated {extra}")
    docs = attribute_docs(RLHFConfig)
    out: list[Setting] = []
    for group, names in GROUPS.items():
        out.extend(Setting(n, group, yaml_value(_default(fields[n])), docs.get(n, "")) for n in names)
        if group == RULE_GROUP:
            out.extend(_rule_settings())
        elif group == CRITIC_GROUP:
            critic_docs = attribute_docs(CriticConfig)
            out.extend(
                Setting(f.name, group, yaml_value(_default(f)), critic_docs.get(f.name, ""))
                for f in dataclasses.fields(CriticConfig)
            )
    return out


def _rule_settings() -> list[Setting]:
    defaults: dict[str, dict[str, list[str]]] = {}  # setting -> default -> rules
    docs: dict[str, str] = {}
    for rule, cls in RULES.items():
        rule_docs = attribute_docs(cls.Config)
        for field in dataclasses.fields(cls.Config):
            defaults.setdefault(field.name, {}).setdefault(yaml_value(_default(field)), []).append(rule)
            docs.setdefault(field.name, rule_docs.get(field.name, ""))
    out = []
    for name, by_default in defaults.items():
        rules = [r for rs in by_default.values() for r in rs]
        if len(by_default) == 1:
            (default,) = by_default
            doc = docs[name] if len(rules) == len(RULES) else f"{docs[name]} [{', '.join(rules)}]"
        else:
            default = "; ".join(f"{', '.join(rs)}: {d}" for d, rs in by_default.items())
            doc = docs[name]
        out.append(Setting(name, RULE_GROUP, default, doc))
    return out


def shipped_config(env: str) -> Path | None:
    """The shipped config for ``env`` (:data:`ENV_CONFIGS`), or None where there is none (or the file is absent)."""
    name = ENV_CONFIGS.get(env)
    path = None if name is None else CONFIG_DIR / name
    return path if path is not None and path.is_file() else None


def display_path(path: Path) -> str:
    """``path`` relative to the working directory where it lies below it, else absolute."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except ValueError:  # another drive
        return str(path)
