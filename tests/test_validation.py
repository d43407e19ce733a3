"""Argument checks: each message names the argument and the value."""

import pytest

from keras_kd.utils.validation import check_bool
from keras_kd.utils.validation import check_non_negative
from keras_kd.utils.validation import check_one_of
from keras_kd.utils.validation import check_positive
from keras_kd.utils.validation import check_unit_interval


def test_valid_values_come_back_as_floats():
    assert check_positive("t", 2) == 2.0
    assert check_non_negative("w", 0) == 0.0
    assert check_unit_interval("alpha", 1) == 1.0
    assert check_one_of("mode", "kl", ("kl", "mse")) == "kl"
    assert check_bool("flag", False) is False


@pytest.mark.parametrize("check,value,error,match", [
    (check_positive, 0, ValueError, "`x` must be > 0. Received: x=0"),
    (check_positive, float("inf"), ValueError, "finite.*x=inf"),
    (check_positive, True, TypeError, "must be a number.*bool"),
    (check_positive, "2", TypeError, "x='2'"),
    (check_non_negative, -0.5, ValueError, ">= 0. Received: x=-0.5"),
    (check_unit_interval, 1.5, ValueError, r"\[0, 1\]. Received: x=1.5"),
    (check_unit_interval, float("nan"), ValueError, "finite"),
])
def test_bad_values(check, value, error, match):
    with pytest.raises(error, match=match):
        check("x", value)


def test_one_of_and_bool():
    with pytest.raises(ValueError, match=r"one of \['a'\]. Received: x='b'"):
        check_one_of("x", "b", ("a",))
    with pytest.raises(TypeError, match="True or False. Received: x=1"):
        check_bool("x", 1)
