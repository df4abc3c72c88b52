"""sobirl: bilevel reinforcement learning with fully first-order hyper-gradients (SoBiRL)."""

__version__ = "0.1.0"
