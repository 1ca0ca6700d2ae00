"""The build's fast paths give exactly what the general code gives (issue 12).

The PROV-JSON record text, the column-wise series aggregation and the param grouping key were
rewritten for speed at 10^5 ranks; each is compared here with the general formulation it
replaces, on values chosen to break a careless rewrite (Unicode, control characters, ints at
the xsd:int/long/integer bounds, NaN/inf/-0.0, ties between ranks, several runs).
"""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace
from typing import Any

import pytest

from yprov4ml_hpc._merge._graph import _json_key, _value_key
from yprov4ml_hpc._merge._graph_base import DateTime, QName
from yprov4ml_hpc._merge._provjson import _ENCODER, _encode, element_text, relation_text
from yprov4ml_hpc._merge._stats import SeriesAggregate, aggregate_series
from yprov4ml_hpc._reader import SeriesMeta, SeriesStats

TRICKY: list[Any] = [
    "plain",
    "",
    'quote " backslash \\ slash /',
    "tab\tnewline\ncr\rbell\x07 nul-free \x1f",
    "caf\u00e9 \u4e2d\u6587 \U0001f600 \u2028 \ud7ff",
    0,
    -1,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    10**30,
    True,
    False,
    0.0,
    -0.0,
    1.5,
    1e-300,
    1e300,
    float("nan"),
    float("inf"),
    float("-inf"),
    QName("yprov4ml:RankProcess"),
    QName('odd"qname'),
    DateTime(1_700_000_000_123_456_789),
    DateTime(0),
    [QName("prov:Collection"), QName("yprov4ml:RankFiles")],
    [1, "a", 2.5],
]


def general_element(ident: str, attrs: dict[str, Any]) -> str:
    return f"{_ENCODER.encode(ident)}:{_ENCODER.encode(_encode(attrs))}"


@pytest.mark.parametrize("value", TRICKY, ids=repr)
def test_record_text_equals_the_json_encoder(value: Any) -> None:
    attrs = {"yprov4ml:x": value, "prov:startTime": 1_700_000_000_000_001_000, "k\u00e9y\n": "v"}
    assert element_text('run:r\u00e9"1', attrs) == general_element('run:r\u00e9"1', attrs)
    roles = {"prov:activity": "run:a\u00e9", "prov:entity": 'run:"e'}
    general = f"{_ENCODER.encode('_:r7')}:{_ENCODER.encode({**roles, **_encode(attrs)})}"
    assert relation_text("used", "_:r7", "run:a\u00e9", 'run:"e', attrs) == general
    general_empty = f"{_ENCODER.encode('_:r8')}:{_ENCODER.encode(roles)}"
    assert relation_text("used", "_:r8", "run:a\u00e9", 'run:"e', {}) == general_empty


@pytest.mark.parametrize("value", [*TRICKY, None, {"b": [1, 2], "a": "\u00e9"}, (1, 2), {1, 2}.__class__])
def test_param_value_key_is_the_json_text(value: Any) -> None:
    assert _value_key(value) == _json_key(value)


def _random_stats(rng: random.Random) -> SeriesStats:
    pool = [0.0, -0.0, 1.0, 1.0, 2.5, -3.0, math.inf, -math.inf, 1e-9, 0.1, 0.2, 0.3]
    count = rng.randint(0, 5)
    low = rng.choice([None, *pool]) if count else None
    high = rng.choice([None, *pool]) if count else None
    first = rng.choice([None, 5, 3, 3, 9]) if count else None
    return SeriesStats(
        count=count,
        nan_count=rng.randint(0, count),
        valid=rng.randint(0, count),
        min=low,
        max=high,
        sum=rng.choice([0.0, 0.1, 0.2, 0.3, 1e16, -1e16, 1.0, math.inf]),
        last=rng.choice([None, math.nan, *pool]),
        first_time_ns=first,
        last_time_ns=None if first is None else first + rng.randint(0, 3),
    )


def _reference(members: list[tuple[int, int, str, Any]]) -> dict[tuple[str, str], SeriesAggregate]:
    out: dict[tuple[str, str], SeriesAggregate] = {}
    for run, rank, host, meta in members:
        for s in meta.series:
            key = (s.context, s.name)
            agg = out.setdefault(key, SeriesAggregate(s.name, s.context, s.h5path))
            agg.add(run, rank, host, s.stats)
    return {key: out[key] for key in sorted(out)}


@pytest.mark.parametrize("seed", range(25))
def test_column_wise_aggregation_equals_adding_rank_by_rank(seed: int) -> None:
    rng = random.Random(seed)
    members = []
    for run in range(rng.randint(1, 3)):
        for rank in range(rng.randint(1, 40)):
            series = tuple(
                SeriesMeta(n, c, f"/{c}/{n}/{rank}", 0, _random_stats(rng))
                for c, n in (("training", "loss"), ("validation", "acc"), ("training", "a"))
                if rng.random() < 0.8
            )
            members.append((run, rank, f"host{rank % 3}", SimpleNamespace(series=series)))
    fast, slow = aggregate_series(members), _reference(members)
    assert list(fast) == list(slow)
    for key in fast:
        a, b = fast[key], slow[key]
        # repr: bit-identical floats, and NaN equal to NaN
        assert repr(vars(a)) == repr(vars(b)), key
        assert repr((a.mean, a.last)) == repr((b.mean, b.last))


def test_sum_is_added_in_rank_order_not_compensated() -> None:
    sums = [1e16, 1.0, -1e16]  # in order: (1e16 + 1) - 1e16 == 0.0; compensated: 1.0
    members: list[tuple[int, int, str, Any]] = [
        (
            0,
            r,
            "h",
            SimpleNamespace(series=(SeriesMeta("n", "c", "/", 1, SeriesStats(1, 0, 1, 1.0, 1.0, s, 1.0)),)),
        )
        for r, s in enumerate(sums)
    ]
    assert aggregate_series(members)[("c", "n")].total == 0.0
    assert json.dumps(aggregate_series(members)[("c", "n")].total) == "0.0"


@pytest.mark.parametrize("seed", range(20))
def test_mean_of_last_values_is_the_nan_skipping_formula(seed: int) -> None:
    rng = random.Random(seed)
    pool = [0.1, 0.2, 0.3, -1.5, 1e308, math.nan, math.inf, -math.inf, 0.0, -0.0]
    lasts = [rng.choice(pool[: rng.randint(5, len(pool))]) for _ in range(rng.randint(0, 30))]
    kept = [v for v in lasts if not math.isnan(v)]
    try:
        expected: Any = (
            None
            if not kept
            else math.fsum(kept) / len(kept)
            if all(math.isfinite(v) for v in kept)
            else sum(kept) / len(kept)
        )
    except OverflowError as exc:
        expected = type(exc)
    agg = SeriesAggregate("n", "c", "/", lasts=lasts)
    try:
        got: Any = agg.last
    except OverflowError as exc:
        got = type(exc)
    assert repr(got) == repr(expected)
