"""Outer-loop bilevel methods behind one entry point, :func:`solve`."""

from sobirl.algorithms.base import History, MethodConfig, OuterLoop, SolveResult
from sobirl.algorithms.exact import Exact, ExactConfig
from sobirl.algorithms.hpgd import HPGD, HPGDConfig
from sobirl.algorithms.itd import ITD, ITDConfig
from sobirl.algorithms.m_sobirl import MSoBiRL, MSoBiRLConfig
from sobirl.algorithms.model_free import ModelFreeConfig
from sobirl.algorithms.parl import PARL, PARLConfig
from sobirl.algorithms.pbrl import PBRL, PBRLConfig
from sobirl.algorithms.sobirl import SoBiRL, SoBiRLConfig
from sobirl.algorithms.sobirl_mf import SoBiRLModelFree
from sobirl.algorithms.solve import METHODS, DivergenceError, resolve_config, solve
from sobirl.algorithms.stoc_sobirl import StocSoBiRL, StocSoBiRLConfig
from sobirl.algorithms.zero_order import ZeroOrder, ZeroOrderConfig

__all__ = [
    "HPGD",
    "ITD",
    "METHODS",
    "PARL",
    "PBRL",
    "DivergenceError",
    "Exact",
    "ExactConfig",
    "HPGDConfig",
    "History",
    "ITDConfig",
    "MSoBiRL",
    "MSoBiRLConfig",
    "MethodConfig",
    "ModelFreeConfig",
    "OuterLoop",
    "PARLConfig",
    "PBRLConfig",
    "SoBiRL",
    "SoBiRLConfig",
    "SoBiRLModelFree",
    "SolveResult",
    "StocSoBiRL",
    "StocSoBiRLConfig",
    "ZeroOrder",
    "ZeroOrderConfig",
    "resolve_config",
    "solve",
]
