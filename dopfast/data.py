"""Compatibility home of the synthetic robust-PCA data (``dopfast.data.rpca_problem``,
``dopfast.data.relative_error``); both live in :mod:`dopfast.rpca.data`."""

from .rpca.data import relative_error, rpca_problem

__all__ = ["rpca_problem", "relative_error"]
