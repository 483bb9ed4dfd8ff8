"""Training under label noise by sparse over-parameterization (SOP): the loss module, the training pipeline with
its baseline losses, and data with synthetic label noise."""

from .loss import VARIANTS, SOPLoss

__all__ = ["SOPLoss", "VARIANTS"]
