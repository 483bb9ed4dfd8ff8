"""Robust PCA estimator: ``Y = L + S`` with L low-rank and S sparse, by DOP (default), PCP or cvxpy.

A thin scikit-learn shell: parameters in ``__init__`` (read back from its signature, so ``sklearn.base.clone``
works), validation and input conversion at ``fit``, learned attributes with a trailing underscore. The DOP
algorithm (step rule, stopping, refinement) is :func:`dopfast.rpca.dop.fit_dop`.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .. import _validate
from . import sharded
from .dop import fit_dop
from .rows import Rows

METHODS = ("dop", "pcp", "convex")
MODELS = ("auto", "psd", "general")
_OWNER = "RobustPCA"


class ConvergenceWarning(UserWarning):
    """The solver stopped at max_iter before meeting its tolerance."""


class _InputInfo(NamedTuple):
    """How to hand results back in the input's type."""

    is_torch: bool
    device: torch.device
    dtype: torch.dtype | None  # the input's float dtype (torch input), None for NumPy or non-float input
    batched: bool


class RobustPCA:
    """Robust PCA by double over-parameterization (scikit-learn conventions).

    Parameters
    ----------
    method : "dop" | "pcp" | "convex"
        "dop": gradient descent on ``¼‖X + g∘g − h∘h − Y‖²`` with ``X = U Uᵀ`` or ``U Vᵀ`` (fused ops);
        "pcp": ``min ‖L‖* + λ‖S‖₁`` by ADMM (``X ⪰ 0`` added for the "psd" model, i.e. the paper's eq. 8);
        "convex": the same program through cvxpy (small matrices only).
    model : "auto" | "psd" | "general"
        "psd": ``X = U Uᵀ`` (the paper's model; square Y, need not be symmetric); "general": ``X = U Vᵀ``;
        "auto": "psd" for square symmetric Y whose largest eigenvalue outweighs its most negative one (a
        positive semidefinite part dominates), else "general".
    alpha : float, default √max(m, n)
        Learning-rate ratio for g, h; the equivalent convex problem has ``λ = 1/alpha``.
    step : float, optional
        τ, the step for the factors (``alpha·step`` for g, h). Default: the scale-free rule above.
    rank : int, optional
        Number of columns r' of the factors. Default: min(m, n) (the paper's full over-parameterization) up to
        64; beyond, 64 columns, doubled (up to min(m, n)) whenever the rank read from the largest gap in the
        spectrum of X exceeds half the width, so the width follows the rank instead of the matrix size.
    max_iter, tol : stopping (see module docstring); for "pcp", ADMM iterations and residual tolerance.
    init_scale : float
        Relative initialisation scale (1e-4 as in the paper).
    refine : bool
        Finish DOP with the certified rank/support refit (False: the pure paper method).
    device, dtype : where and in which precision to compute (default: the input's).
    random_state : int or None
        Seed of the initialisation.
    verbose : bool
        Show a progress bar (rank 0 only when distributed).
    distributed : bool
        Fit one matrix whose rows are split over the ranks of the initialised default ``torch.distributed``
        process group: call ``fit(Y_local)`` in every rank with its block of consecutive rows (blocks in rank
        order, at least one row each; gloo for CPU tensors, NCCL for CUDA ones). ``low_rank_``/``sparse_``
        are this rank's rows; everything else is the same on every rank, and with the same ``random_state``
        the result equals the one-process fit of the whole matrix up to rounding (see docs/scale-out.md).

    Attributes
    ----------
    low_rank_, sparse_ : the estimates, in the input's type (NumPy or torch, same device and shape).
    dop_low_rank_ : the DOP estimate before refinement ("dop" only).
    n_iter_ : steps (or ADMM iterations) taken; an int, or an array per problem for a batch.
    loss_curve_ : ¼‖R‖² per step for DOP (primal residual per iteration for "pcp"); NaN-padded per problem.
    converged_ : whether the tolerance was met (bool, or array for a batch).
    rank_, refined_ : rank found by the refinement and whether it was accepted ("dop" with refine=True).
    step_ : the step τ used per problem (in the data's units).
    model_, alpha_ : the resolved model and ratio.
    """

    def __init__(self, method: str = "dop", model: str = "auto", alpha: float | None = None,
                 step: float | None = None, rank: int | None = None, max_iter: int = 50_000, tol: float = 1e-3,
                 init_scale: float = 1e-4, refine: bool = True, device=None, dtype=None, random_state=None,
                 verbose: bool = False, distributed: bool = False):
        self.method = method
        self.model = model
        self.alpha = alpha
        self.step = step
        self.rank = rank
        self.max_iter = max_iter
        self.tol = tol
        self.init_scale = init_scale
        self.refine = refine
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.distributed = distributed

    # scikit-learn's parameter protocol, read from the signature of __init__
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"RobustPCA: unknown parameter {k!r}; valid ones are {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = {k: p.default for k, p in inspect.signature(type(self).__init__).parameters.items()}
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k])
        return f"RobustPCA({changed})"

    # ------------------------------------------------------------------------------------------------
    def _validate(self) -> dict:
        """The checked parameters, as plain Python values."""
        _validate.choice(_OWNER, "method", self.method, METHODS)
        _validate.choice(_OWNER, "model", self.model, MODELS)
        _validate.choice(_OWNER, "refine", self.refine, (True, False))
        _validate.choice(_OWNER, "verbose", self.verbose, (True, False))
        _validate.choice(_OWNER, "distributed", self.distributed, (True, False))
        if self.distributed and self.method != "dop":
            raise ValueError(f"RobustPCA: distributed=True needs method='dop', got method={self.method!r}")
        return {
            "alpha": _validate.real(_OWNER, "alpha", self.alpha, allow_none=True),
            "step": _validate.real(_OWNER, "step", self.step, allow_none=True),
            "rank": _validate.integer(_OWNER, "rank", self.rank, allow_none=True),
            "max_iter": _validate.integer(_OWNER, "max_iter", self.max_iter),
            "tol": _validate.real(_OWNER, "tol", self.tol, inclusive=True),
            "init_scale": _validate.real(_OWNER, "init_scale", self.init_scale),
        }

    def _dtype(self, t: Tensor) -> torch.dtype:
        dtype = self.dtype
        if isinstance(dtype, str):
            if dtype not in ("float32", "float64"):
                raise ValueError(f"RobustPCA: dtype must be float32 or float64, got {dtype!r}")
            dtype = getattr(torch, dtype)
        elif dtype is not None and not isinstance(dtype, torch.dtype):
            try:
                dtype = torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
            except TypeError as exc:
                raise ValueError(f"RobustPCA: dtype must be float32 or float64, got {dtype!r}") from exc
        if dtype is None:
            dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float64
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"RobustPCA: dtype must be float32 or float64, got {dtype}")
        return dtype

    def _to_tensor(self, y, mask=None) -> tuple[Tensor, _InputInfo, Tensor | None]:
        """Input → (B, m, n) float tensor (zero where ``mask`` is false), what is needed to give results back in
        the input's type, and the mask as a (B, m, n) bool tensor (None without one)."""
        is_torch = isinstance(y, Tensor)
        if not is_torch:
            arr = np.asarray(y)
            if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                raise TypeError(f"RobustPCA.fit: Y must be a numeric array, got dtype {arr.dtype}")
            if np.iscomplexobj(arr):
                raise TypeError("RobustPCA.fit: Y must be real, got a complex array")
            t = torch.from_numpy(np.ascontiguousarray(arr))
        else:
            if y.is_complex():
                raise TypeError("RobustPCA.fit: Y must be real, got a complex tensor")
            t = y.detach()
        if t.dim() not in (2, 3):
            raise ValueError(f"RobustPCA.fit: Y must be a matrix (m, n) or a batch (B, m, n), got shape "
                             f"{tuple(t.shape)}")
        if t.numel() == 0:
            raise ValueError(f"RobustPCA.fit: Y is empty (shape {tuple(t.shape)})")
        dtype = self._dtype(t)
        device = _validate.device(_OWNER, "device", self.device) if self.device is not None else t.device
        info = _InputInfo(is_torch, t.device, t.dtype if is_torch and t.is_floating_point() else None, t.dim() == 3)
        seen = None if mask is None else self._mask(mask, t)

        def finite(a: Tensor) -> bool:  # where observed
            if not a.is_floating_point():
                return True
            if seen is None:  # NaN and ±inf show in the extremes: no m × n temporary
                return bool(torch.isfinite(torch.stack(torch.aminmax(a))).all())
            return bool((torch.isfinite(a) | ~seen).all())

        if not finite(t):
            raise ValueError("RobustPCA.fit: Y contains NaN or infinite entries" + (
                "; to treat them as missing pass mask=~np.isnan(Y)" if mask is None else " where mask is true"))
        converted = t.to(device=device, dtype=dtype)
        if seen is not None:
            seen = seen.to(device)
        if converted.dtype != t.dtype and not finite(converted):
            raise ValueError(f"RobustPCA.fit: Y's entries overflow {dtype}; pass dtype='float64'")
        t = converted
        if seen is not None:
            t = t.masked_fill(~seen, 0)
        batch = (lambda a: a) if t.dim() == 3 else (lambda a: a.unsqueeze(0))
        return batch(t), info, (None if seen is None else batch(seen))

    @staticmethod
    def _mask(mask, t: Tensor) -> Tensor:
        """The observation mask as a bool tensor of Y's shape on Y's device."""
        if isinstance(mask, Tensor):
            m = mask.detach()
        else:
            arr = np.asarray(mask)
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                raise TypeError(f"RobustPCA.fit: mask must be bool or 0/1, got dtype {arr.dtype}")
            m = torch.from_numpy(np.ascontiguousarray(arr))
        if tuple(m.shape) != tuple(t.shape):
            raise ValueError(f"RobustPCA.fit: mask must have Y's shape {tuple(t.shape)}, got {tuple(m.shape)}")
        return _validate.observation_mask("RobustPCA.fit", m).to(t.device)

    @staticmethod
    def _back(t: Tensor, info: _InputInfo):
        if not info.batched:
            t = t.squeeze(0)
        if info.is_torch:
            # Float input keeps its dtype; integer or bool input gets the computation's float dtype.
            return t.to(device=info.device, dtype=info.dtype or t.dtype)
        return t.cpu().numpy()

    def _resolve_model(self, y: Tensor, rows: Rows | None = None) -> str:
        m = y.shape[-2] if rows is None else rows.total
        if self.model != "auto":
            if self.model == "psd" and y.shape[-1] != m:
                raise ValueError(f"RobustPCA: model='psd' needs square matrices, got shape {(m, y.shape[-1])}")
            return self.model
        if y.shape[-1] != m:
            return "general"
        if rows is not None:
            return "psd" if sharded.psd_dominant(y[0], rows) else "general"
        peak = y.abs().amax((-2, -1), keepdim=True)
        yn = y / torch.where(peak > 0, peak, torch.ones_like(peak))  # no overflow in the norms below
        sym = torch.linalg.matrix_norm(yn - yn.mT) <= 1e-10 * torch.linalg.matrix_norm(yn)
        if not bool(sym.all()):
            return "general"
        # U Uᵀ can only fit a positive semidefinite low-rank part: symmetric data whose most negative eigenvalue
        # outweighs its largest positive one (e.g. a negative definite matrix) is not of that kind.
        eig = torch.linalg.eigvalsh(0.5 * (yn + yn.mT))
        return "psd" if bool((eig[:, -1] >= -eig[:, 0]).all()) else "general"

    def _generator(self) -> torch.Generator:
        """The initialisation's generator from random_state: None, an int, or a NumPy RandomState / Generator
        (scikit-learn's convention; one seed is drawn from it)."""
        seed = self.random_state
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        elif isinstance(seed, np.random.RandomState):
            seed = int(seed.randint(0, 2**31 - 1))
        elif isinstance(seed, np.random.Generator):
            seed = int(seed.integers(0, 2**63 - 1))
        else:
            seed = _validate.integer(_OWNER, "random_state", seed, minimum=0)
        return torch.Generator(device="cpu").manual_seed(seed % 2**63)

    # ------------------------------------------------------------------------------------------------
    def fit(self, X, y=None, mask=None):
        """Separate ``X`` (m×n, or a batch B×m×n; NumPy or torch) into low-rank and sparse parts.

        ``y`` is ignored (scikit-learn's pipeline convention). ``mask`` (same shape; bool or 0/1, true =
        observed) marks missing entries, which may hold anything (NaN included): they add nothing to the fit,
        ``low_rank_`` fills them in and ``sparse_`` is zero there ("dop" only).
        """
        for name in ("low_rank_", "sparse_", "dop_low_rank_", "n_iter_", "loss_curve_", "converged_", "rank_",
                     "refined_", "step_", "model_", "alpha_"):
            self.__dict__.pop(name, None)  # nothing from an earlier fit survives this one
        params = self._validate()  # the same parameters on every rank: checked before any collective
        if mask is not None and self.method != "dop":
            raise ValueError(f"RobustPCA: mask needs method='dop', got method={self.method!r}")
        if self.distributed:
            settings = repr((sorted(params.items()), self.method, self.model, self.refine, str(self.dtype),
                             mask is None))
            (t, info, seen), rows = sharded.collective_checks(lambda: self._to_tensor(X, mask), _OWNER, settings)
            generator = sharded.same_generator(self._generator, rows)
        else:
            t, info, seen = self._to_tensor(X, mask)
            rows = None
        n = t.shape[2]
        m = t.shape[1] if rows is None else rows.total
        self.model_ = self._resolve_model(t, rows)
        self.alpha_ = params["alpha"] if params["alpha"] is not None else math.sqrt(max(m, n))
        if self.method == "dop":
            fit = fit_dop(t, psd=self.model_ == "psd", alpha=self.alpha_, step=params["step"], rank=params["rank"],
                          max_iter=params["max_iter"], tol=params["tol"], init_scale=params["init_scale"],
                          refine=bool(self.refine), generator=generator if rows is not None else self._generator(),
                          verbose=self.verbose, rows=rows, mask=seen)
            low, sparse = fit.low_rank, fit.sparse
            self.dop_low_rank_ = self._back(fit.dop_low_rank, info)
            self.n_iter_, self.converged_, self.loss_curve_, self.step_ = (fit.n_iter, fit.converged,
                                                                           fit.loss_curve, fit.step)
            if fit.rank is not None:
                self.rank_, self.refined_ = fit.rank, fit.refined
        else:
            low, sparse = self._fit_convex(t, params)
        self.low_rank_ = self._back(low, info)
        self.sparse_ = self._back(sparse, info)
        if not info.batched:  # per-problem arrays become scalars
            self.n_iter_ = int(self.n_iter_[0])
            self.converged_ = bool(self.converged_[0])
            self.loss_curve_ = self.loss_curve_[0][~np.isnan(self.loss_curve_[0])]
            if self.method == "dop":
                self.step_ = float(self.step_[0])
                if hasattr(self, "rank_"):
                    self.rank_ = int(self.rank_[0])
                    self.refined_ = bool(self.refined_[0])
        if not np.all(self.converged_):
            warnings.warn(f"RobustPCA({self.method}) stopped at max_iter={self.max_iter} before reaching "
                          f"tol={self.tol}; raise max_iter or tol", ConvergenceWarning, stacklevel=2)
        return self

    def fit_transform(self, X, y=None):
        """Fit and return the low-rank part."""
        return self.fit(X).low_rank_

    def _fit_convex(self, y: Tensor, params: dict):
        from .convex import solve_convex
        from .pcp import pcp

        psd = self.model_ == "psd"
        lam = 1.0 / self.alpha_
        lows, sparses, iters, conv, curves = [], [], [], [], []
        for i in range(y.shape[0]):
            if self.method == "pcp":
                hist = []
                r = pcp(y[i], lam, psd=psd, tol=params["tol"] if params["tol"] > 0 else 1e-7,
                        max_iter=params["max_iter"], callback=lambda it, x, p, d: hist.append(p))
                lows.append(r.low_rank)
                sparses.append(r.sparse)
                iters.append(r.n_iter)
                conv.append(r.converged)
                curves.append(hist)
            else:
                x, s, status = solve_convex(y[i].cpu().numpy(), lam, psd=psd)
                lows.append(torch.from_numpy(x).to(y))
                sparses.append(torch.from_numpy(s).to(y))
                iters.append(0)
                conv.append(status == "optimal")
                curves.append([])
        width = max(len(c) for c in curves)
        self.loss_curve_ = np.array([c + [math.nan] * (width - len(c)) for c in curves], dtype=np.float64)
        self.n_iter_ = np.array(iters)
        self.converged_ = np.array(conv)
        return torch.stack(lows), torch.stack(sparses)
