"""Training under label noise by sparse over-parameterization (SOP): the loss module, the training pipeline with
its baseline losses, and data with synthetic label noise."""

from .label_issues import LabelIssues, find_label_issues, label_issues_from_scores, label_issues_from_sop
from .loss import VARIANTS, SOPLoss

__all__ = ["SOPLoss", "VARIANTS", "find_label_issues", "label_issues_from_sop", "label_issues_from_scores",
           "LabelIssues"]
