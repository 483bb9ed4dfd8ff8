"""Validation of user-facing Python arguments (estimators, trainers, the command line): one rule per kind of
number, with messages that name the owner and the argument and echo what arrived.

The op layer's own checks (shapes, dtypes, devices of tensors) are in :mod:`dopfast._checks`.
"""

from __future__ import annotations

import argparse
import math
import numbers


class InvalidValue(ValueError):
    """A value of the right kind out of its range; ``expected`` says what was wanted."""

    def __init__(self, owner: str, name: str, expected: str, value):
        super().__init__(f"{owner}: {name} must be {expected}, got {value!r}")
        self.expected = expected


class InvalidType(TypeError):
    """A value of the wrong kind; ``expected`` says what was wanted."""

    def __init__(self, owner: str, name: str, expected: str, value):
        super().__init__(f"{owner}: {name} must be {expected}, got {value!r}")
        self.expected = expected


def integer(owner: str, name: str, value, minimum: int = 1, allow_none: bool = False):
    """An int (any integral type, e.g. ``np.int64``, but not bool) ``>= minimum``; returns a Python int."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidType(owner, name, "an int", value)
    if value < minimum:
        raise InvalidValue(owner, name, "a positive int" if minimum == 1 else f"an int >= {minimum}", value)
    return int(value)


def real(owner: str, name: str, value, minimum: float = 0.0, inclusive: bool = False, allow_none: bool = False,
         maximum: float | None = None):
    """A finite real number (not bool) above ``minimum`` (or at it with ``inclusive``) and at most ``maximum``;
    returns a float."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidType(owner, name, "a number", value)
    value = float(value)
    below = value < minimum or (value == minimum and not inclusive)
    if not math.isfinite(value) or below or (maximum is not None and value > maximum):
        if maximum is not None:
            what = f"a number in {'[' if inclusive else '('}{minimum:g}, {maximum:g}]"
        elif minimum == 0 and not inclusive:
            what = "a positive finite number"
        else:
            what = f"a finite number {'>=' if inclusive else '>'} {minimum:g}"
        raise InvalidValue(owner, name, what, value)
    return value


def choice(owner: str, name: str, value, options) -> str:
    if value not in options:
        raise InvalidValue(owner, name, f"one of {tuple(options)}", value)
    return value


def arg_type(validator, *args, **kwargs):
    """An argparse ``type=`` from a validator above: ``arg_type(integer, minimum=0)`` parses the text as the
    validator's kind (int for ``integer``, float for ``real``) and reports its message on failure."""
    cast = {integer: int, real: float}.get(validator, str)

    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an int' if cast is int else 'a number'}, "
                                             f"got {text!r}") from None
        try:
            return validator("", "", value, *args, **kwargs)
        except (InvalidType, InvalidValue) as exc:
            raise argparse.ArgumentTypeError(f"expected {exc.expected}, got {text!r}") from None

    return parse


def device(owner: str, name: str, value):
    """A torch device that exists here: ``cpu``, or ``cuda[:i]`` with a GPU."""
    import torch

    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        raise InvalidValue(owner, name, "a device such as 'cpu' or 'cuda'", value) from None
    if dev.type not in ("cpu", "cuda"):
        raise InvalidValue(owner, name, "'cpu' or 'cuda'", value)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValue(owner, name, "'cpu' (no CUDA device is available here)", value)
    return dev


_MASK_INTS = ("uint8", "int8", "int16", "int32", "int64")


def observation_mask(owner: str, mask):
    """An observation mask tensor as bool (true = observed): bool as it is, or 0/1 values of a float or
    integer dtype (checked, then converted). Shape and device are the caller's to check."""
    import torch

    if mask.dtype == torch.bool:
        return mask
    if not (mask.is_floating_point() or mask.dtype in tuple(getattr(torch, d) for d in _MASK_INTS)):
        raise TypeError(f"{owner}: mask must be bool or 0/1, got dtype {mask.dtype}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{owner}: mask must be bool or hold only 0 and 1 (1 = observed)")
    return mask != 0
