"""History and resume parameters as REST query strings carry them (pure)."""

from __future__ import annotations

import pytest

from icpy_kernels.errors import ValidationError
from icpy_kernels.protocol.sharing import parse_history, parse_resume


@pytest.mark.parametrize("value", ["²", " 5", "5 ", "5.0", "", "x", "-1", 5.5, True])
def test_integers_are_ascii_digits_as_sent(value):
    # "²".isdigit() is true and int("²") a ValueError (it was a 500); " 5" is no integer for
    # the OpenAPI document either.
    with pytest.raises(ValidationError) as err:
        parse_history({"limit": value})
    assert err.value.field == "limit"
    with pytest.raises(ValidationError) as err:
        parse_resume({"execution_id": "e1", "after_seq": value})
    assert err.value.field == "after_seq"


def test_integers_parse_whatever_their_length():
    assert parse_history({"limit": "0050"}).limit == 50 and parse_history({"limit": 7.0}).limit == 7
    # int() refuses a string of over 4300 digits (a ValueError): past every seq is past every seq.
    assert parse_resume({"execution_id": "e1", "after_seq": "9" * 5000})[1] == 10**18
    with pytest.raises(ValidationError):
        parse_history({"limit": "9" * 5000})


def test_ids_refuse_a_final_newline():
    with pytest.raises(ValidationError) as err:
        parse_history({"before": "e1\n"})
    assert err.value.field == "before"
