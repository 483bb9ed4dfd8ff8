"""Robust PCA: ``Y = L + S`` by double over-parameterization (the estimator, its DOP driver and refinement),
with the convex baselines (PCP by ADMM, eq. 8 through cvxpy) and the paper's synthetic data."""

from .data import relative_error, rpca_problem
from .dop import CHUNK, STEP_FRACTION, DopFit, fit_dop, step_scale
from .estimator import ConvergenceWarning, RobustPCA

__all__ = ["RobustPCA", "ConvergenceWarning", "fit_dop", "DopFit", "step_scale", "STEP_FRACTION", "CHUNK",
           "rpca_problem", "relative_error"]
