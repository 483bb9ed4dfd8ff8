"""Robust PCA estimator: ``Y = L + S`` with L low-rank and S sparse, by DOP (default), PCP or cvxpy.

Step-size rule (``step=None``). Each problem is divided by ``c = max(‖Y‖₂, α·max|Y|)`` and run with
``τ = 0.25`` (so the effective step is ``0.25 / c``), from ``U, g ~ N(0, σ²)``, ``h = g`` with
``σ = init_scale·√(‖Y/c‖₂ / max(m, n))``. The two terms bound the curvature of the loss in U (≈ 2‖X‖₂ near a
solution) and in g, h (≈ 2α|s| for the α-scaled step), so the rule keeps both steps a fixed fraction below
their stability limits. Because the DOP iteration is exactly scale-equivariant (Y → cY, U → √c U,
g → √c g, τ → τ/c), scaling Y by 1000 gives the same iterates up to that scaling, and the same rule serves
n = 50 and n = 2000. On the paper's n = 50 data its effective τ is about 3e-3, 30× the paper's 1e-4.

Stopping: after every chunk of steps, when the relative residual ``‖X + s − Y‖_F / ‖Y‖_F ≤ tol`` (the
constraint of eq. 8 that DOP satisfies in the limit), or after ``max_iter`` steps. A NaN/Inf loss or a loss
rising above twice its starting value raises ``FloatingPointError`` naming the step that caused it.

Refinement (``refine=True``, method "dop"): see :mod:`dopfast.rpca_refine`.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch
from torch import Tensor

from . import ops
from .rpca_refine import refine_low_rank

STEP_FRACTION = 0.25
CHUNK = 500


class ConvergenceWarning(UserWarning):
    """The solver stopped at max_iter before meeting its tolerance."""


def _check_positive(name: str, value, allow_none: bool = True, integer: bool = False):
    if value is None and allow_none:
        return
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"RobustPCA: {name} must be {'an int' if integer else 'a number'}, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"RobustPCA: {name} must be a positive finite number, got {value!r}")


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
        "auto": "psd" for square symmetric Y, else "general".
    alpha : float, default √max(m, n)
        Learning-rate ratio for g, h; the equivalent convex problem has ``λ = 1/alpha``.
    step : float, optional
        τ, the step for the factors (``alpha·step`` for g, h). Default: the scale-free rule above.
    rank : int, optional
        Number of columns r' of the factors (default min(m, n): full over-parameterization).
    max_iter, tol : stopping (see module docstring); for "pcp", ADMM iterations and residual tolerance.
    init_scale : float
        Relative initialisation scale (1e-4 as in the paper).
    refine : bool
        Finish DOP with the certified rank/support refit (False: the pure paper method).
    device, dtype : where and in which precision to compute (default: the input's).
    random_state : int or None
        Seed of the initialisation.
    verbose : bool
        Show a progress bar.

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
                 verbose: bool = False):
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

    # scikit-learn's parameter protocol
    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in ("method", "model", "alpha", "step", "rank", "max_iter", "tol",
                                               "init_scale", "refine", "device", "dtype", "random_state",
                                               "verbose")}

    def set_params(self, **params):
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"RobustPCA: unknown parameter {k!r}; valid ones are {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = RobustPCA().get_params()
        changed = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k])
        return f"RobustPCA({changed})"

    # ------------------------------------------------------------------------------------------------
    def _validate(self):
        if self.method not in ("dop", "pcp", "convex"):
            raise ValueError(f"RobustPCA: method must be 'dop', 'pcp' or 'convex', got {self.method!r}")
        if self.model not in ("auto", "psd", "general"):
            raise ValueError(f"RobustPCA: model must be 'auto', 'psd' or 'general', got {self.model!r}")
        _check_positive("alpha", self.alpha)
        _check_positive("step", self.step)
        _check_positive("rank", self.rank, integer=True)
        _check_positive("max_iter", self.max_iter, allow_none=False, integer=True)
        _check_positive("init_scale", self.init_scale, allow_none=False)
        if isinstance(self.tol, bool) or not isinstance(self.tol, numbers.Real) or not (
                math.isfinite(self.tol) and self.tol >= 0):
            raise ValueError(f"RobustPCA: tol must be a finite number >= 0, got {self.tol!r}")

    def _to_tensor(self, y):
        """Input → (B, m, n) float tensor, plus what is needed to give results back in the input's type."""
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
        dtype = self.dtype
        if isinstance(dtype, str):
            if dtype not in ("float32", "float64"):
                raise ValueError(f"RobustPCA: dtype must be float32 or float64, got {dtype!r}")
            dtype = getattr(torch, dtype)
        elif dtype is not None and not isinstance(dtype, torch.dtype):
            dtype = torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
        if dtype is None:
            dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float64
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"RobustPCA: dtype must be float32 or float64, got {dtype}")
        device = torch.device(self.device) if self.device is not None else (t.device if is_torch else
                                                                            torch.device("cpu"))
        out_info = (is_torch, t.device, t.dtype if is_torch else None, t.dim() == 3)
        t = t.to(device=device, dtype=dtype)
        if not bool(torch.isfinite(t).all()):
            raise ValueError("RobustPCA.fit: Y contains NaN or infinite entries")
        return (t if t.dim() == 3 else t.unsqueeze(0)), out_info

    @staticmethod
    def _back(t: Tensor, info):
        is_torch, device, dtype, batched = info
        if not batched:
            t = t.squeeze(0)
        if is_torch:
            return t.to(device=device, dtype=dtype if t.is_floating_point() and dtype is not None else t.dtype)
        return t.cpu().numpy()

    def _resolve_model(self, y: Tensor) -> str:
        if self.model != "auto":
            if self.model == "psd" and y.shape[-1] != y.shape[-2]:
                raise ValueError(f"RobustPCA: model='psd' needs square matrices, got shape {tuple(y.shape[-2:])}")
            return self.model
        if y.shape[-1] != y.shape[-2]:
            return "general"
        sym = torch.linalg.matrix_norm(y - y.mT) <= 1e-10 * torch.linalg.matrix_norm(y)
        return "psd" if bool(sym.all()) else "general"

    # ------------------------------------------------------------------------------------------------
    def fit(self, Y):
        """Separate ``Y`` (m×n, or a batch B×m×n; NumPy or torch) into low-rank and sparse parts."""
        self._validate()
        y, info = self._to_tensor(Y)
        b, m, n = y.shape
        self.model_ = self._resolve_model(y)
        self.alpha_ = float(self.alpha) if self.alpha is not None else math.sqrt(max(m, n))
        if self.method == "dop":
            low, sparse = self._fit_dop(y)
        else:
            low, sparse = self._fit_convex(y)
        self.low_rank_ = self._back(low, info)
        self.sparse_ = self._back(sparse, info)
        if self.method == "dop":
            self.dop_low_rank_ = self._back(self.dop_low_rank_, info)
        if not info[3]:  # unbatched input: per-problem arrays become scalars
            self.n_iter_ = int(self.n_iter_[0])
            self.converged_ = bool(self.converged_[0])
            self.loss_curve_ = self.loss_curve_[0][~np.isnan(self.loss_curve_[0])]
            if self.method == "dop":
                self.step_ = float(self.step_[0])
                if self.refine:
                    self.rank_ = int(self.rank_[0])
                    self.refined_ = bool(self.refined_[0])
        if not np.all(self.converged_):
            warnings.warn(f"RobustPCA({self.method}) stopped at max_iter={self.max_iter} before reaching "
                          f"tol={self.tol}; raise max_iter or tol", ConvergenceWarning, stacklevel=2)
        return self

    def fit_transform(self, Y):
        """Fit and return the low-rank part."""
        return self.fit(Y).low_rank_

    # ------------------------------------------------------------------------------------------------
    def _generator(self) -> torch.Generator:
        seed = self.random_state
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"RobustPCA: random_state must be an int or None, got {seed!r}")
        return torch.Generator(device="cpu").manual_seed(int(seed))

    def _fit_dop(self, y: Tensor):
        b, m, n = y.shape
        psd = self.model_ == "psd"
        k = min(m, n) if self.rank is None else min(int(self.rank), min(m, n))
        alpha = self.alpha_
        spec = torch.linalg.matrix_norm(y, ord=2)
        if self.step is None:
            # Per-problem scale so that one normalised step serves the whole batch (see module docstring).
            scale = torch.maximum(spec, alpha * y.abs().amax((-2, -1)))
            tau = STEP_FRACTION
        else:
            scale = torch.ones(b, dtype=y.dtype, device=y.device)
            tau = float(self.step)
        # (tau / scale is the step in the data's units.)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        yn = y / scale.view(-1, 1, 1)
        std = self.init_scale * torch.sqrt(spec / scale / max(m, n)).clamp_min(1e-30)  # ‖yn‖₂ = ‖y‖₂ / scale
        gen = self._generator()
        noise = lambda *shape: torch.randn(*shape, generator=gen, dtype=y.dtype).to(y.device)  # noqa: E731
        u = noise(b, m, k) * std.view(-1, 1, 1)
        v = None if psd else noise(b, n, k) * std.view(-1, 1, 1)
        g = noise(b, m, n) * std.view(-1, 1, 1)
        h = g.clone()
        y_norm = torch.linalg.matrix_norm(yn)
        chunks = []  # per-chunk (b, steps) loss blocks, NaN for problems already finished
        n_iter = np.zeros(b, dtype=np.int64)
        converged = np.zeros(b, dtype=bool)
        active = torch.arange(b)
        first_loss = None
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.max_iter, desc="RobustPCA(dop)", unit="step")
        try:
            done = 0
            while done < self.max_iter and active.numel():
                steps = min(CHUNK, self.max_iter - done)
                ya = yn[active]
                if psd:
                    sol = ops.rpca_dop_solve(ya, u[active], g[active], h[active], tau, alpha, steps)
                else:
                    sol = ops.rpca_dop_solve_uv(ya, u[active], v[active], g[active], h[active], tau, alpha, steps)
                    v[active] = sol.v
                u[active], g[active], h[active] = sol.u, sol.g, sol.h
                chunk_losses = sol.losses.to(device="cpu", dtype=torch.float64)
                block = torch.full((b, steps), math.nan, dtype=torch.float64)
                block[active] = chunk_losses
                chunks.append(block)
                if first_loss is None:
                    first_loss = chunk_losses[:, 0].clone()
                self._check_divergence(chunk_losses, first_loss[active], active, done, tau / scale.cpu()[active])
                done += steps
                n_iter[active.numpy()] = done
                rel = (4 * chunk_losses[:, -1]).sqrt() / y_norm.cpu()[active].clamp_min(1e-300)
                finished = rel <= self.tol
                converged[active[finished].numpy()] = True
                if bar is not None:
                    bar.update(steps)
                    bar.set_postfix(residual=f"{float(rel.max()):.2e}", running=int((~finished).sum()))
                active = active[~finished]
        finally:
            if bar is not None:
                bar.close()
        x = u @ u.mT if psd else u @ v.mT
        s = g * g - h * h
        sc = scale.view(-1, 1, 1)
        x, s = x * sc, s * sc
        self.step_ = (tau / scale).cpu().numpy() if self.step is None else np.full(b, tau)
        self.n_iter_ = n_iter
        self.converged_ = converged
        losses = torch.cat(chunks, dim=1) if chunks else torch.zeros(b, 0, dtype=torch.float64)
        self.loss_curve_ = (losses * scale.cpu().view(-1, 1).double() ** 2).numpy()
        self.dop_low_rank_ = x
        if not self.refine:
            return x, s
        refined = x.clone()
        ranks, accepted = np.zeros(b, dtype=np.int64), np.zeros(b, dtype=bool)
        for i in range(b):
            r = refine_low_rank(y[i], x[i], 1.0 / alpha, psd, max_rank=k)
            refined[i], ranks[i], accepted[i] = r.low_rank, r.rank, r.accepted
        self.rank_, self.refined_ = ranks, accepted
        return refined, y - refined

    def _check_divergence(self, chunk_losses, first, active, offset, taus):
        bad = ~torch.isfinite(chunk_losses) | (chunk_losses > 2 * first.view(-1, 1))
        if not bool(bad.any()):
            return
        row, col = (int(i) for i in bad.nonzero()[0])
        problem = int(active[row])
        step = float(taus[row])
        value = float(chunk_losses[row, col])
        what = "a non-finite loss" if not math.isfinite(value) else f"a loss rising to {value:.3g} from {float(first[row]):.3g}"
        where = f" of problem {problem}" if len(active) > 1 or problem else ""
        raise FloatingPointError(
            f"RobustPCA: DOP diverged at step {offset + col}{where} ({what}) with step τ={step:.3g}; "
            f"pass a smaller step, e.g. step={step / 10:.3g}")

    def _fit_convex(self, y: Tensor):
        from .baselines.convex import solve_convex
        from .baselines.pcp import pcp

        b = y.shape[0]
        psd = self.model_ == "psd"
        lam = 1.0 / self.alpha_
        lows, sparses, iters, conv, curves = [], [], [], [], []
        for i in range(b):
            if self.method == "pcp":
                hist = []
                r = pcp(y[i], lam, psd=psd, tol=self.tol if self.tol > 0 else 1e-7, max_iter=self.max_iter,
                        callback=lambda it, x, p, d: hist.append(p))
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
