from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from yprov4ml_hpc._names import check_name, escape_name, unescape_name

NAMES = st.text(min_size=1, max_size=200).filter(lambda s: "\x00" not in s)


@given(NAMES)
def test_escape_round_trips_and_is_a_single_hdf5_component(name: str) -> None:
    escaped = escape_name(name)
    assert "/" not in escaped
    assert not escaped.startswith(".")
    assert unescape_name(escaped) == name


@pytest.mark.parametrize("name", ["train/loss", "a b", "%2F", "..", ".", "ünïcødé/∑", "100%"])
def test_tricky_names(name: str) -> None:
    assert unescape_name(escape_name(name)) == name


def test_distinct_names_never_collide() -> None:
    names = ["a/b", "a%2Fb", "a%252Fb", ".x", "%2Ex"]
    assert len({escape_name(n) for n in names}) == len(names)


@pytest.mark.parametrize(
    ("value", "error", "needle"),
    [
        ("", ValueError, "empty"),
        ("a\x00b", ValueError, "NUL"),
        (3, TypeError, "int"),
        (None, TypeError, "None"),
    ],
)
def test_check_name_errors_name_the_problem(value: object, error: type, needle: str) -> None:
    with pytest.raises(error, match=needle):
        check_name("metric name", value)
