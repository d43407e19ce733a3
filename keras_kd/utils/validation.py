"""Argument checks shared by the public classes.

Every message names the argument, what was expected and what was received,
in the Keras style: "Argument `temperature` must be > 0. Received:
temperature=-1".
"""

import math
import numbers


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a number. "
            f"Received: {name}={value!r} (of type {type(value).__name__})"
        )
    if not math.isfinite(value):
        raise ValueError(
            f"Argument `{name}` must be a finite number. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_positive(name, value):
    """Returns `float(value)`; raises unless `value > 0`."""
    number = _check_number(name, value)
    if not number > 0:
        raise ValueError(
            f"Argument `{name}` must be > 0. Received: {name}={value!r}"
        )
    return number


def check_non_negative(name, value):
    """Returns `float(value)`; raises unless `value >= 0`."""
    number = _check_number(name, value)
    if not number >= 0:
        raise ValueError(
            f"Argument `{name}` must be >= 0. Received: {name}={value!r}"
        )
    return number


def check_unit_interval(name, value):
    """Returns `float(value)`; raises unless `0 <= value <= 1`."""
    number = _check_number(name, value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(
            f"Argument `{name}` must be in [0, 1]. Received: {name}={value!r}"
        )
    return number


def check_open_unit_interval(name, value):
    """Returns `float(value)`; raises unless `0 < value < 1`."""
    number = _check_number(name, value)
    if not 0.0 < number < 1.0:
        raise ValueError(
            f"Argument `{name}` must be in (0, 1). Received: {name}={value!r}"
        )
    return number


def check_one_of(name, value, allowed):
    """Returns `value`; raises unless it is one of `allowed`."""
    if value not in allowed:
        raise ValueError(
            f"Argument `{name}` must be one of {list(allowed)}. "
            f"Received: {name}={value!r}"
        )
    return value


def check_bool(name, value):
    """Returns `value`; raises unless it is `True` or `False`."""
    if not isinstance(value, bool):
        raise TypeError(
            f"Argument `{name}` must be True or False. "
            f"Received: {name}={value!r}"
        )
    return value
