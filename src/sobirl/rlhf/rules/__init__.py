"""Upper-level update rules on the reward net, one class each (:class:`UpdateRule`), by ``--algo`` name."""

from sobirl.rlhf.rules.base import RuleConfig, UpdateLoss, UpdateRule, leave_one_out
from sobirl.rlhf.rules.drlhf import DRLHF
from sobirl.rlhf.rules.hpgd import HPGD, HPGDConfig
from sobirl.rlhf.rules.pbrl import PBRL, PBRLConfig
from sobirl.rlhf.rules.sobirl import SoBiRL, SoBiRLConfig
from sobirl.rlhf.rules.stoc_sobirl import StocSoBiRL, StocSoBiRLConfig

__all__ = [
    "DRLHF",
    "HPGD",
    "PBRL",
    "RULES",
    "HPGDConfig",
    "PBRLConfig",
    "RuleConfig",
    "SoBiRL",
    "SoBiRLConfig",
    "StocSoBiRL",
    "StocSoBiRLConfig",
    "UpdateLoss",
    "UpdateRule",
    "leave_one_out",
    "rule_keys",
]

RULES: dict[str, type[UpdateRule]] = {
    "drlhf": DRLHF,
    "sobirl": SoBiRL,
    "stoc-sobirl": StocSoBiRL,
    "hpgd": HPGD,
    "pbrl": PBRL,
}
"""The rules by name (``sobirl rlhf --algo``)."""


def rule_keys() -> tuple[str, ...]:
    """Every setting of some rule (the flat config keys that belong to the rule section), in a stable order."""
    return tuple(dict.fromkeys(k for rule in RULES.values() for k in rule.Config.setting_names()))
