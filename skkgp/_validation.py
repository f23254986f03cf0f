"""Declarative parameter validation for skkgp's estimators and functions.

Modelled on scikit-learn's ``_parameter_constraints``: an estimator declares, for each
parameter, the list of constraints one of which its value must satisfy, and
:func:`validate_params` checks them all once, at the start of ``fit``. A constraint is
a type (``isinstance``), ``None``, ``"boolean"``, or an object with
``is_satisfied_by(value)`` and a ``str`` that completes "must be ...". The errors
name the parameter, what it must be and the value given::

    prune_ratio must be a number in (0, 1), got 1.5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral
from typing import Any

import numpy as np
import torch

__all__ = [
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "Options",
    "TorchDevice",
    "validate_params",
]


class InvalidParameterError(ValueError, TypeError):
    """A parameter has a value that none of its constraints admits."""


class Interval:
    """Finite numbers of one type between two bounds.

    Parameters
    ----------
    type : Integral or Real
        ``Integral`` admits ints (not floats, not bools); ``Real`` admits ints and
        floats (not bools).
    left, right : float or None
        The bounds; None is unbounded.
    closed : {"left", "right", "both", "neither"}
        Which bounds belong to the interval.
    """

    def __init__(self, type, left, right, *, closed: str):  # noqa: A002 - sklearn's name
        self.type = type
        self.left = left
        self.right = right
        self.closed = closed

    def is_satisfied_by(self, value) -> bool:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, self.type):
            return False
        if not math.isfinite(float(value)):
            return False
        if self.left is not None:
            if value < self.left or (value == self.left and self.closed in ("right", "neither")):
                return False
        if self.right is not None:
            if value > self.right or (value == self.right and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self) -> str:
        kind = "an int" if self.type is Integral else "a finite number"
        if self.left is not None and self.right is not None:
            left = "[" if self.closed in ("left", "both") else "("
            right = "]" if self.closed in ("right", "both") else ")"
            return f"{kind} in {left}{self.left}, {self.right}{right}"
        if self.left is not None:
            return f"{kind} {'>=' if self.closed in ('left', 'both') else '>'} {self.left}"
        if self.right is not None:
            return f"{kind} {'<=' if self.closed in ('right', 'both') else '<'} {self.right}"
        return kind


class Options:
    """One of a few given values.

    Parameters
    ----------
    options : iterable
        The admitted values (strings, numbers).
    """

    def __init__(self, options: Iterable):
        self.options = frozenset(options)

    def is_satisfied_by(self, value) -> bool:
        if isinstance(value, (bool, np.bool_)):
            return False
        try:
            return value in self.options
        except TypeError:  # unhashable
            return False

    def __str__(self) -> str:
        if len(self.options) == 1:
            return repr(next(iter(self.options)))
        return f"one of {sorted(self.options, key=str)}"


class HasMethods:
    """An object with the given methods (an estimator, say).

    Parameters
    ----------
    methods : sequence of str
    """

    def __init__(self, methods: Sequence[str]):
        self.methods = tuple(methods)

    def is_satisfied_by(self, value) -> bool:
        return all(callable(getattr(value, method, None)) for method in self.methods)

    def __str__(self) -> str:
        return f"an object with the methods {list(self.methods)}"


class TorchDevice:
    """The name of a torch device that exists on this machine (``"cpu"``, ``"cuda:0"``)."""

    def reason(self, value) -> str | None:
        """Why ``value`` is not such a device, or None when it is."""
        try:
            device = torch.device(value)
        except (RuntimeError, TypeError) as error:
            return str(error)
        if device.type == "cuda" and not torch.cuda.is_available():
            return "torch finds no CUDA GPU here; use device='cpu'"
        return None

    def is_satisfied_by(self, value) -> bool:
        return self.reason(value) is None

    def __str__(self) -> str:
        return "a torch device available here"


class _Boolean:
    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, (bool, np.bool_))

    def __str__(self) -> str:
        return "True or False"


class _NoneValue:
    def is_satisfied_by(self, value) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


class _InstanceOf:
    def __init__(self, type_: type):
        self.type = type_

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, self.type)

    def __str__(self) -> str:
        return f"a {self.type.__name__}"


def _constraint(constraint):
    if constraint is None:
        return _NoneValue()
    if constraint == "boolean":
        return _Boolean()
    if isinstance(constraint, type):
        return _InstanceOf(constraint)
    return constraint


def validate_params(constraints: Mapping[str, list], params: Mapping[str, Any]) -> None:
    """Check every parameter of ``params`` that ``constraints`` names.

    Parameters
    ----------
    constraints : dict of str to list
        Parameter name -> the constraints one of which its value must satisfy.
    params : dict of str to object
        Parameter values, e.g. ``estimator.get_params(deep=False)``.

    Raises
    ------
    InvalidParameterError
        For the first parameter that satisfies none of its constraints (a
        ``ValueError`` and a ``TypeError``), with a message naming it, what it must
        be, and the value given.
    """
    for name, value in params.items():
        if name not in constraints:
            continue
        options = [_constraint(c) for c in constraints[name]]
        if any(option.is_satisfied_by(value) for option in options):
            continue
        described = [part for option in options for part in str(option).split(" or ")]
        must = described[0] if len(described) == 1 else (
            ", ".join(described[:-1]) + " or " + described[-1]
        )
        reasons = [option.reason(value) for option in options if hasattr(option, "reason")]
        detail = "".join(f" ({reason})" for reason in reasons if reason)
        raise InvalidParameterError(f"{name} must be {must}, got {value!r}{detail}.")
