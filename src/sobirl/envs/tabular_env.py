"""A tabular MDP and a reward table as a gymnasium environment: one transition per :meth:`TabularEnv.step`.

    s_0 ~ rho (or given through ``reset(options={"state": s})``),  reward r(s_t, a_t),  s_{t+1} ~ P(.|s_t, a_t)

The episode terminates after the action taken in a terminal state (its reward is collected, nothing follows:
the same convention as :class:`~sobirl.tabular.TabularMDP` and :func:`~sobirl.tabular.sample_trajectories`), and is
truncated after ``max_episode_steps`` steps when that is set.

Everything a step needs is converted to numpy (or plain Python) once, at construction, so a step is a few
Python operations and one draw from ``self.np_random``:

- next states: the inverse CDF of the row ``P(.|s, a)``. The rows of ``P`` read as a CSR matrix ``(S*A, S)``
  (a sparse ``P`` as stored, never densified; a dense ``P`` stores every entry, its columns implicit) get their
  own cumulative sums, divided by the row total so that each row ends at exactly 1.0, and a uniform
  ``u ~ U[0, 1)`` picks the first entry of its row whose cumulative sum exceeds ``u`` (``bisect`` over the row,
  ``O(log row length)``; zero-probability entries are never chosen). Each row is summed on its own, so the
  rounding error of a probability stays at the level of its row, not of the whole matrix.
- start states: the same with the cumulative sums of ``rho``.

Memory: one float64 per stored entry of ``P`` (the row CDFs), plus the column indices of a sparse ``P``.

This is the one-transition-at-a-time reference for model-free code (and for libraries that expect a gymnasium
environment); :func:`~sobirl.tabular.sample_trajectories` draws many trajectories at once and is far faster
(``benchmarks/sampler.py``).

Registered as :data:`~sobirl.envs.registration.TABULAR_ENV_ID` (``sobirl/Tabular-v0``) when :mod:`sobirl.envs` is
imported: ``gymnasium.make("sobirl/Tabular-v0", mdp=mdp, reward=r, max_episode_steps=50)`` and
``gymnasium.make_vec(...)`` build it through :func:`make_tabular_env` (without ``mdp``, a random MDP from ``seed``;
gymnasium's ``max_episode_steps`` is its ``TimeLimit``).
"""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any, SupportsIndex

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from sobirl.tabular.mdp import TabularMDP
from sobirl.tabular.soft import check_reward
from sobirl.validation import check_int

RESET_OPTIONS = ("state",)
"""The keys ``reset(options=...)`` accepts."""
DEFAULT_STATES, DEFAULT_ACTIONS = 10, 5
"""The size of :func:`make_tabular_env`'s random MDP when no ``mdp`` is given (the paper's RandMDP's S and A)."""


class TabularEnv(gymnasium.Env[int, int]):
    """A :class:`~sobirl.tabular.TabularMDP` with a reward table ``r`` as a gymnasium environment.

    Observations are state indices in ``Discrete(S)`` (plain ``int``), actions indices in ``Discrete(A)``.
    ``step(a)`` in state ``s`` returns the reward ``r(s, a)`` and a next state ``s' ~ P(.|s, a)`` drawn with
    ``self.np_random`` (seeded through ``reset(seed=...)``: same seed and actions, same trajectory). In a terminal
    state the reward is collected and the episode terminates (``terminated=True``; the observation returned is
    that terminal state again and means nothing). With ``max_episode_steps`` the step that reaches that count
    returns ``truncated=True`` (also when it terminates, as gymnasium's ``TimeLimit`` does). After either,
    ``reset`` must be called before the next ``step``. ``info`` is always an empty dict.

    Args:
        mdp: the MDP (``P`` dense or sparse, ``rho``, ``terminal``). Its ``gamma`` and ``tau`` play no part in
            sampling; returns are discounted by whoever consumes the rewards.
        reward: reward table ``(S, A)``, a finite floating tensor (checked like every reward in the package).
        max_episode_steps: truncate episodes after this many steps (an integer ``>= 1``), or None for no limit.

    Raises:
        TypeError / ValueError: naming the argument and the allowed values.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's class attribute, read only)

    def __init__(self, mdp: TabularMDP, reward: torch.Tensor, *, max_episode_steps: int | None = None) -> None:
        if not isinstance(mdp, TabularMDP):
            raise TypeError(f"mdp must be a sobirl.tabular.TabularMDP, got {type(mdp).__name__}")
        reward = check_reward(mdp, reward)
        if max_episode_steps is not None:
            check_int("max_episode_steps", max_episode_steps, low=1)
        S, A = mdp.shape
        self.n_states, self.n_actions = S, A
        self.max_episode_steps = max_episode_steps
        self.observation_space = spaces.Discrete(S)
        self.action_space = spaces.Discrete(A)

        # The tables, as numpy arrays (the storage; pickled with the environment) ...
        self._arrays: dict[str, np.ndarray] = {
            "reward": reward.detach().cpu().numpy().reshape(-1).copy(),  # row s*A + a: r(s, a)
            "rho_cdf": _normalised_cdf(mdp.rho.detach().cpu().numpy()),
        }
        self._terminal: list[bool] = mdp.terminal.cpu().tolist()
        self._indptr: list[int] | None  # CSR row pointers of a sparse P; None for dense (row r at r*S)
        if mdp.is_sparse:
            indptr = mdp.P.crow_indices().cpu().numpy()
            self._arrays["cdf"] = _row_cdfs(indptr, mdp.P.values().detach().cpu().numpy())
            self._arrays["cols"] = mdp.P.col_indices().cpu().numpy().astype(np.int64)
            self._indptr = indptr.tolist()
        else:  # the column of an entry is its offset in the row
            self._arrays["cdf"] = _dense_row_cdfs(mdp.P.detach().cpu().numpy().reshape(S * A, S))
            self._indptr = None
        # ... read in a step through memoryviews, whose items are plain Python floats and ints (several times
        # cheaper to index than numpy scalars, also inside ``bisect``).
        self._make_views()

        self._state: int | None = None  # None before the first reset
        self._done = False  # the episode ended (terminated or truncated): reset before stepping
        self._steps = 0

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """Start an episode: ``s_0 ~ rho``, or ``options={"state": s}`` to start from ``s``.

        Args:
            seed: reseeds ``self.np_random`` (gymnasium convention); None keeps the current generator.
            options: None, or a dict whose only key is ``"state"``: an integer in ``[0, S)``.

        Returns:
            ``(s_0, {})``.

        Raises:
            ValueError / TypeError: an unknown option, or a state that is not an integer in ``[0, S)``.
        """
        super().reset(seed=seed)
        if options is not None:
            self._check_options(options)
        if options and "state" in options:
            state = self._check_state(options["state"])
        else:
            state = bisect_right(self._rho_cdf, self.np_random.random())
        self._state, self._done, self._steps = state, False, 0
        return state, {}

    def step(self, action: SupportsIndex) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Take ``action`` in the current state: reward ``r(s, a)``, next state ``s' ~ P(.|s, a)``.

        Args:
            action: an integer in ``[0, A)`` (``int`` or numpy integer).

        Returns:
            ``(s', r(s, a), terminated, truncated, {})``; ``terminated`` when ``s`` is terminal (``s'`` is then
            ``s`` and means nothing), ``truncated`` when this step reaches ``max_episode_steps``.

        Raises:
            RuntimeError: before the first ``reset`` or after the episode ended.
            ValueError / TypeError: an action that is not an integer in ``[0, A)``.
        """
        s = self._state
        if s is None:
            raise RuntimeError("TabularEnv.step called before reset(); call reset() to start an episode")
        if self._done:
            raise RuntimeError(
                "TabularEnv.step called after the episode ended (terminated or truncated); call reset() first"
            )
        try:
            a = operator.index(action)
        except TypeError:
            raise TypeError(f"action must be an integer in [0, {self.n_actions - 1}], got {action!r}") from None
        if not 0 <= a < self.n_actions:
            raise ValueError(f"action must be an integer in [0, {self.n_actions - 1}], got {a}")
        row = s * self.n_actions + a
        reward = self._reward[row]
        self._steps += 1
        terminated = self._terminal[s]
        if not terminated:
            u = self.np_random.random()
            if self._indptr is None:  # dense: row r owns cdf[r*S : (r+1)*S], the offset is the state
                lo = row * self.n_states
                s = bisect_right(self._cdf, u, lo, lo + self.n_states) - lo
            else:
                s = self._cols[bisect_right(self._cdf, u, self._indptr[row], self._indptr[row + 1])]
            self._state = s
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        self._done = terminated or truncated
        return s, reward, terminated, truncated, {}

    # ------------------------------------------------------------------ storage

    def _make_views(self) -> None:
        arrays = self._arrays
        self._reward = memoryview(arrays["reward"])
        self._rho_cdf = memoryview(arrays["rho_cdf"])
        self._cdf = memoryview(arrays["cdf"])  # row CDFs, one entry per stored entry of P, rows s*A + a
        self._cols = memoryview(arrays["cols"]) if "cols" in arrays else None  # CSR columns of a sparse P

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (and deep-copy) support: the memoryviews are left out and rebuilt from the arrays."""
        state = self.__dict__.copy()
        for view in ("_reward", "_rho_cdf", "_cdf", "_cols"):
            state.pop(view, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled environment (episode and generator state included)."""
        self.__dict__.update(state)
        self._make_views()

    # ------------------------------------------------------------------ validation

    @staticmethod
    def _check_options(options: Any) -> None:
        if not isinstance(options, Mapping):
            raise TypeError(f"reset options must be a dict or None, got {type(options).__name__}")
        unknown = sorted(map(str, set(options) - set(RESET_OPTIONS)))
        if unknown:
            raise ValueError(f"unknown reset option(s) {', '.join(unknown)}; valid: {', '.join(RESET_OPTIONS)}")

    def _check_state(self, state: Any) -> int:
        allowed = f"an integer in [0, {self.n_states - 1}]"
        if isinstance(state, (bool, np.bool_)) or not isinstance(state, (int, np.integer)):
            raise TypeError(f"reset option 'state' must be {allowed}, got {type(state).__name__}")
        if not 0 <= state < self.n_states:
            raise ValueError(f"reset option 'state' must be {allowed}, got {state}")
        return int(state)

    def __repr__(self) -> str:
        return f"TabularEnv(S={self.n_states}, A={self.n_actions}, max_episode_steps={self.max_episode_steps})"


# ---------------------------------------------------------------------------------------------- row CDFs


def _normalised_cdf(p: np.ndarray) -> np.ndarray:
    """Cumulative sums of a distribution, divided by the total: non-decreasing and ending at exactly 1.0."""
    c = np.cumsum(p)
    return c / c[-1]


def _dense_row_cdfs(P: np.ndarray) -> np.ndarray:
    """Row CDFs of a dense ``(S*A, S)`` matrix, flattened; rows summing to 0 (terminal states) stay 0."""
    c = np.cumsum(P, axis=1)
    total = c[:, -1:].copy()
    total[total == 0] = 1.0
    c /= total
    return c.reshape(-1)


def _row_cdfs(indptr: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-row cumulative sums of the CSR ``values``, each divided by its row's total.

    Rows of equal length are summed together (``np.cumsum`` along the rows of a gathered block), so each row is
    accumulated on its own, with one numpy call per distinct row length (at most ``sqrt(2 nnz)`` of them).
    """
    cdf = np.empty_like(values)
    lengths = np.diff(indptr)
    for length in np.unique(lengths):
        if length == 0:  # terminal states store nothing
            continue
        rows = np.flatnonzero(lengths == length)
        idx = indptr[rows, None] + np.arange(length)
        block = np.cumsum(values[idx], axis=1)
        total = block[:, -1:]
        block /= np.where(total > 0, total, 1.0)
        cdf[idx] = block
    return cdf


# ---------------------------------------------------------------------------------------------- registered entry point


def make_tabular_env(
    *,
    mdp: TabularMDP | None = None,
    reward: torch.Tensor | np.ndarray | Sequence[Sequence[float]] | None = None,
    n_states: int | None = None,
    n_actions: int | None = None,
    seed: int = 0,
) -> TabularEnv:
    """A :class:`TabularEnv` from keyword arguments: the entry point of ``gymnasium.make("sobirl/Tabular-v0", ...)``
    and ``gymnasium.make_vec`` (module docstring).

    Args:
        mdp: the MDP; None: a random one of ``n_states`` x ``n_actions`` (default :data:`DEFAULT_STATES` x
            :data:`DEFAULT_ACTIONS`) drawn from ``seed``: each row ``P(.|s, a)`` uniform draws normalised (as the
            paper's RandMDP), ``rho`` uniform, no terminal state.
        reward: the reward table ``(S, A)``, a tensor or anything ``torch.as_tensor`` reads as floats; None: uniform
            draws in ``[0, 1)`` from ``seed`` (after the MDP's).
        n_states: states of the random MDP (``>= 1``); only without ``mdp``.
        n_actions: actions of the random MDP (``>= 1``); only without ``mdp``.
        seed: seed of the random MDP and reward (``>= 0``); the episodes' randomness comes from ``reset(seed=...)``.

    Raises:
        TypeError / ValueError: an invalid argument (naming it), or ``n_states``/``n_actions`` given with ``mdp``.
    """
    check_int("seed", seed)
    gen = torch.Generator().manual_seed(seed)
    if mdp is None:
        S = DEFAULT_STATES if n_states is None else check_int("n_states", n_states, low=1)
        A = DEFAULT_ACTIONS if n_actions is None else check_int("n_actions", n_actions, low=1)
        P = torch.rand(S, A, S, generator=gen, dtype=torch.float64)
        mdp = TabularMDP(P / P.sum(dim=-1, keepdim=True))
    elif n_states is not None or n_actions is not None:
        raise ValueError("n_states and n_actions size the random MDP; leave them out when passing mdp")
    elif not isinstance(mdp, TabularMDP):
        raise TypeError(f"mdp must be a sobirl.tabular.TabularMDP, got {type(mdp).__name__}")
    if reward is None:
        reward = torch.rand(mdp.shape, generator=gen, dtype=torch.float64)
    elif not isinstance(reward, torch.Tensor):
        try:
            reward = torch.as_tensor(np.asarray(reward, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"reward must be a table of floats of shape (S, A) = {mdp.shape}: {err}") from None
    return TabularEnv(mdp, reward)
