"""The SOP training pipeline's first home; it lives in :mod:`dopfast.sop.train` (this name is kept)."""

from .sop.train import LOSSES, SOP_DEFAULTS, TrainResult, evaluate, make_criterion, make_mlp, sgd_epochs, split, train

__all__ = ["train", "TrainResult", "LOSSES", "SOP_DEFAULTS", "evaluate", "make_criterion", "make_mlp",
           "sgd_epochs", "split"]
