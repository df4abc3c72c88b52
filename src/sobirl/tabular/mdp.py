"""The follower's MDP without its reward: transitions ``P``, discount ``gamma``, temperature ``tau``, ``rho``.

``P`` is either a dense ``(S, A, S)`` tensor or a torch sparse matrix (COO or CSR) of shape ``(S*A, S)``
whose row ``s*A + a`` is ``P(.|s, a)``. Everything downstream only touches ``P`` through the two products
defined here (:meth:`TabularMDP.expect` and :meth:`TabularMDP.pushforward`), so a sparse ``P`` is never
densified: memory stays of the order of ``nnz(P)``. See docs/math.md, section 2.
"""

from __future__ import annotations

import copy
import warnings

import torch

from sobirl.validation import check_finite, check_range

DTYPE = torch.float64
"""The tabular layer computes in float64 throughout."""

ROW_SUM_ATOL = 1e-8
"""How far a row of ``P`` (or ``rho``) may sum away from 1."""


class TabularMDP:
    """An entropy-regularised MDP with known transitions and a reward supplied separately.

    Args:
        P: transition probabilities, dense ``(S, A, S)`` or torch sparse (COO/CSR) ``(S*A, S)`` with row
            ``s*A + a`` holding ``P(.|s, a)``. Any floating dtype; stored as float64.
        gamma: discount factor in ``[0, 1)``.
        tau: entropy temperature, ``> 0``.
        rho: initial-state distribution ``(S,)``; uniform when ``None``.
        terminal: boolean mask ``(S,)`` of terminal states, or None. In a terminal state the reward of the
            action taken is collected and nothing follows: ``Q(s, a) = r(s, a)``. Their rows of ``P`` are
            ignored (they may be all zero) and stored as zero.

    Raises:
        ValueError: naming the field and the allowed values, before anything is computed.
    """

    def __init__(
        self,
        P: torch.Tensor,
        gamma: float = 0.9,
        tau: float = 0.5,
        rho: torch.Tensor | None = None,
        terminal: torch.Tensor | None = None,
    ) -> None:
        if not isinstance(P, torch.Tensor):
            raise TypeError(f"P must be a torch.Tensor, got {type(P).__name__}")
        if not (P.dtype.is_floating_point):
            raise ValueError(f"P must be a floating tensor, got dtype {P.dtype}")
        self.gamma = check_range("gamma", gamma, low=0.0, high=1.0, high_open=True)
        self.tau = check_range("tau", tau, low=0.0, low_open=True)
        self.is_sparse = P.layout != torch.strided
        if self.is_sparse:
            self._init_sparse(P, terminal)
        else:
            self._init_dense(P, terminal)
        self.rho = self._check_rho(rho)

    # ------------------------------------------------------------------ construction and validation

    def _init_dense(self, P: torch.Tensor, terminal: torch.Tensor | None) -> None:
        if P.dim() != 3 or P.shape[0] != P.shape[2] or P.shape[1] < 1 or P.shape[0] < 1:
            raise ValueError(
                f"P must be dense of shape (S, A, S) or sparse of shape (S*A, S); got dense {tuple(P.shape)}"
            )
        P = P.to(DTYPE)
        self.n_states, self.n_actions = P.shape[0], P.shape[1]
        self.terminal = self._check_terminal(terminal, P.device)
        live_rows = (~self.terminal).repeat_interleave(self.n_actions)
        self._check_entries(P.reshape(-1), P.sum(dim=2).reshape(-1)[live_rows])
        self.P = torch.where(self.terminal.view(-1, 1, 1), 0.0, P).contiguous()

    def _init_sparse(self, P: torch.Tensor, terminal: torch.Tensor | None) -> None:
        if P.layout not in (torch.sparse_coo, torch.sparse_csr):
            raise ValueError(f"sparse P must have layout sparse_coo or sparse_csr, got {P.layout}")
        if P.dim() != 2 or P.shape[1] < 1 or P.shape[0] % P.shape[1] != 0 or P.shape[0] == 0:
            raise ValueError(
                f"sparse P must have shape (S*A, S) with row s*A + a holding P(.|s, a); got {tuple(P.shape)}"
            )
        S = P.shape[1]
        self.n_states, self.n_actions = S, P.shape[0] // S
        coo = P.to(DTYPE).to_sparse_coo().coalesce() if P.layout == torch.sparse_csr else P.to(DTYPE).coalesce()
        self.terminal = self._check_terminal(terminal, P.device)
        rows, cols = coo.indices()
        vals = coo.values()
        row_sums = torch.zeros(S * self.n_actions, dtype=DTYPE, device=vals.device).index_add_(0, rows, vals)
        self._check_entries(vals, row_sums[(~self.terminal).repeat_interleave(self.n_actions)])
        if self.terminal.any():
            keep = ~self.terminal[torch.div(rows, self.n_actions, rounding_mode="floor")]
            rows, cols, vals = rows[keep], cols[keep], vals[keep]
            coo = torch.sparse_coo_tensor(
                torch.stack([rows, cols]), vals, coo.shape, is_coalesced=True, check_invariants=False
            )
        with warnings.catch_warnings():  # torch flags its (working) CSR support as beta on every construction
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.P = coo.to_sparse_csr()
            # P^T, also CSR: the adjoint products sum over (s, a) into s' without a dense scatter.
            PT = torch.sparse_coo_tensor(
                torch.stack([cols, rows]), vals, (S, S * self.n_actions), check_invariants=False
            )
            self.PT = PT.coalesce().to_sparse_csr()
        self._self_loops = torch.zeros(S * self.n_actions, dtype=DTYPE, device=vals.device)
        on_diag = cols == torch.div(rows, self.n_actions, rounding_mode="floor")
        self._self_loops.index_add_(0, rows[on_diag], vals[on_diag])

    def _check_terminal(self, terminal: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        if terminal is None:
            return torch.zeros(self.n_states, dtype=torch.bool, device=device)
        if not isinstance(terminal, torch.Tensor) or terminal.dtype != torch.bool:
            raise TypeError(f"terminal must be a boolean torch.Tensor of shape (S,) = ({self.n_states},) or None")
        if terminal.shape != (self.n_states,):
            raise ValueError(f"terminal must have shape (S,) = ({self.n_states},), got {tuple(terminal.shape)}")
        return terminal.to(device)

    @staticmethod
    def _check_entries(values: torch.Tensor, row_sums: torch.Tensor) -> None:
        check_finite("P", values)
        if values.numel() and values.min() < 0:
            raise ValueError(f"P must have non-negative entries; smallest entry is {values.min().item():.3g}")
        worst = (row_sums - 1.0).abs().max().item() if row_sums.numel() else 0.0
        if worst > ROW_SUM_ATOL:
            raise ValueError(
                f"every row P(.|s, a) of a non-terminal state must sum to 1 (tolerance {ROW_SUM_ATOL:g}); "
                f"worst row is off by {worst:.3g}"
            )

    def _check_rho(self, rho: torch.Tensor | None) -> torch.Tensor:
        if rho is None:
            return torch.full((self.n_states,), 1.0 / self.n_states, dtype=DTYPE, device=self.P.device)
        return self.check_distribution("rho", rho, self.n_states).to(self.P.device)

    @staticmethod
    def check_distribution(name: str, p: torch.Tensor, size: int) -> torch.Tensor:
        """Validate a probability vector of length ``size`` (entries >= 0 summing to 1); returned as float64."""
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(p).__name__}")
        if p.shape != (size,):
            raise ValueError(f"{name} must have shape (S,) = ({size},), got {tuple(p.shape)}")
        p = p.to(DTYPE)
        check_finite(name, p)
        if p.min() < 0 or abs(p.sum().item() - 1.0) > ROW_SUM_ATOL:
            raise ValueError(
                f"{name} must be a probability distribution (entries >= 0, summing to 1); "
                f"got min {p.min().item():.3g}, sum {p.sum().item():.12g}"
            )
        return p

    # ------------------------------------------------------------------ the two products with P

    @property
    def shape(self) -> tuple[int, int]:
        """``(S, A)``: the shape of a reward, Q or policy table."""
        return self.n_states, self.n_actions

    @property
    def nnz(self) -> int:
        """Number of stored transition probabilities (``S*A*S`` when dense)."""
        return int(self.P._nnz()) if self.is_sparse else self.P.numel()

    def expect(self, v: torch.Tensor) -> torch.Tensor:
        """``(P v)(s, a) = sum_s' P(s'|s, a) v(s')``: maps ``(S,)`` to ``(S, A)``."""
        if self.is_sparse:
            return (self.P @ v).view(self.n_states, self.n_actions)
        return self.P @ v

    def pushforward(self, y: torch.Tensor) -> torch.Tensor:
        """``(P^T y)(s') = sum_{s,a} P(s'|s, a) y(s, a)``: maps ``(S, A)`` to ``(S,)``."""
        P_flat = self.PT if self.is_sparse else self.P.view(-1, self.n_states).T  # a view: no copy of P
        return P_flat @ y.reshape(-1)

    def policy_diagonal(self, pi: torch.Tensor) -> torch.Tensor:
        """The diagonal of ``P_pi``: ``P_pi(s, s) = sum_a pi(a|s) P(s|s, a)``, shape ``(S,)``."""
        if self.is_sparse:
            return (pi * self._self_loops.view(self.n_states, self.n_actions)).sum(dim=1)
        idx = torch.arange(self.n_states, device=pi.device)
        return (pi * self.P[idx, :, idx]).sum(dim=1)

    def policy_matrix(self, pi: torch.Tensor) -> torch.Tensor:
        """Dense ``P_pi(s, s') = sum_a pi(a|s) P(s'|s, a)``; only for dense ``P`` (it is ``S x S``)."""
        if self.is_sparse:
            raise RuntimeError("policy_matrix would densify a sparse P; use expect/pushforward instead")
        return torch.einsum("sa,sat->st", pi, self.P)

    def __deepcopy__(self, memo: dict[int, object]) -> TabularMDP:
        """An independent copy (``copy.deepcopy``), sparse CSR ``P`` included, which torch cannot deep-copy itself:
        gymnasium deep-copies an environment's spec, and so the MDP passed to ``gymnasium.make``."""
        new = object.__new__(type(self))
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            if isinstance(value, torch.Tensor) and value.layout == torch.sparse_csr:
                value = torch.sparse_csr_tensor(
                    value.crow_indices().clone(),
                    value.col_indices().clone(),
                    value.values().clone(),
                    value.shape,
                    check_invariants=False,  # a copy of a valid tensor
                )
            else:
                value = copy.deepcopy(value, memo)
            new.__dict__[name] = value
        return new

    def __repr__(self) -> str:
        kind = f"sparse, nnz={self.nnz}" if self.is_sparse else "dense"
        return f"TabularMDP(S={self.n_states}, A={self.n_actions}, gamma={self.gamma}, tau={self.tau}, {kind})"
