"""Tests for oinfo_monitor.estimators.multiplets: enumeration in colex order, chunking, parsing and index validation."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch
from reference import colex

from oinfo_monitor.estimators import oinfo
from oinfo_monitor.estimators.multiplets import (
    combinations,
    iter_combinations,
    n_combinations,
    parse_multiplets,
)

# --- enumeration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "k"), [(1, 1), (5, 1), (5, 5), (7, 3), (10, 4), (12, 6), (20, 2)])
def test_combinations_equal_itertools_in_colex_order(n, k):
    """Every k-subset exactly once, sorted members, ordered colexicographically."""
    got = combinations(n, k)
    assert got.dtype == torch.long
    rows = [tuple(r) for r in got.tolist()]
    assert set(rows) == set(itertools.combinations(range(n), k))
    assert rows == colex(n, k)
    assert n_combinations(n, k) == math.comb(n, k) == len(rows)


@pytest.mark.parametrize(
    ("start", "stop"), [(0, 1), (3, 17), (40, 120), (119, 120), (50, 50), (100, None)]
)
def test_combination_slices_are_the_colex_ranks(start, stop):
    """combinations(n, k, start, stop) is exactly that slice of the full colex enumeration."""
    expected = colex(10, 3)[start:stop]
    assert [tuple(r) for r in combinations(10, 3, start, stop).tolist()] == expected


def test_stop_beyond_the_end_is_clipped():
    assert combinations(6, 2, 10, 1000).shape == (5, 2)


def test_combinations_of_a_huge_enumeration_are_unranked_directly():
    """A slice deep inside C(250, 6) ≈ 3.6e11 comes out without generating what precedes it."""
    total = math.comb(250, 6)
    last = combinations(250, 6, total - 2, total).tolist()
    assert last == [[243, 245, 246, 247, 248, 249], [244, 245, 246, 247, 248, 249]]
    middle = combinations(250, 6, 10**11, 10**11 + 3)
    ranks = [sum(math.comb(c, i + 1) for i, c in enumerate(row)) for row in middle.tolist()]
    assert ranks == [10**11, 10**11 + 1, 10**11 + 2]


@pytest.mark.parametrize("chunk", [1, 7, 35, 36, 1000])
def test_iter_combinations_covers_everything_once(chunk):
    """Chunks are at most `chunk` rows and together are the full enumeration, each subset once, in order."""
    chunks = list(iter_combinations(9, 4, chunk))
    assert all(0 < len(c) <= chunk for c in chunks)
    rows = [tuple(r) for c in chunks for r in c.tolist()]
    assert rows == colex(9, 4)
    assert len(set(rows)) == math.comb(9, 4)


@pytest.mark.parametrize(
    ("n", "k", "start", "stop"), [(3, 4, 0, None), (5, 0, 0, None), (5, 2, 4, 3), (5, 2, -1, 3)]
)
def test_invalid_enumerations_raise(n, k, start, stop):
    with pytest.raises(ValueError, match=rf"no {k}-subsets of {n} variables"):
        combinations(n, k, start, stop)


# --- parsing --------------------------------------------------------------------------------------


def test_parse_groups_by_size_and_keeps_caller_positions():
    """Mixed sizes are grouped for batching; positions map each row back to the caller's order."""
    multiplets = [(0, 1, 2), (3, 4), (5, 1, 0, 2), (2, 3, 4), (1, 0)]
    groups = parse_multiplets(multiplets, 6)
    rebuilt = [None] * len(multiplets)
    for positions, members in groups:
        assert members.dtype == torch.long
        assert len({members.shape[1]} | {len(multiplets[p]) for p in positions.tolist()}) == 1
        for position, row in zip(positions.tolist(), members.tolist(), strict=True):
            rebuilt[position] = tuple(row)
    assert rebuilt == multiplets


def test_mixed_sizes_results_follow_caller_order():
    """oinfo of a mixed-size list equals each multiplet scored alone, in the caller's order."""
    x = np.random.default_rng(0).standard_normal((300, 8))
    x[:, 1] += x[:, 0]
    x[:, 2] += x[:, 0]
    multiplets = [(0, 1, 2, 3), (4, 5), (0, 1, 2), (7, 6, 5, 4, 3), (2, 5, 7)]
    together = oinfo(x, multiplets).numpy()
    alone = [oinfo(x, [m]).item() for m in multiplets]
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-12)


def test_index_array_forms_are_equivalent():
    """A list of tuples, a list of numpy rows, an int32 numpy array and a long tensor give the same result."""
    x = np.random.default_rng(1).standard_normal((200, 6))
    rows = [(0, 1, 2), (3, 4, 5), (5, 0, 2)]
    expected = oinfo(x, rows)
    for form in (
        [np.array(r) for r in rows],
        [torch.tensor(r) for r in rows],
        np.array(rows, dtype=np.int32),
        np.array(rows, dtype=np.uint8),
        torch.tensor(rows),
        tuple(rows),
        [[np.int64(i) for i in r] for r in rows],
    ):
        assert torch.equal(oinfo(x, form), expected)


def test_long_mixed_list_keeps_caller_order():
    """Hundreds of rows of sizes 2-5 in random order (lists and tuples, indices above 255 too)
    come back grouped by size, in the order sizes first appear, each row at its own position."""
    rng = np.random.default_rng(3)
    rows = [
        tuple(int(v) for v in rng.choice(300, size, replace=False))
        for size in rng.integers(2, 6, 400)
    ]
    rows[::7] = [list(r) for r in rows[::7]]
    groups = parse_multiplets(rows, 300)
    sizes = [members.shape[1] for _, members in groups]
    assert sizes == list(dict.fromkeys(len(r) for r in rows))
    rebuilt = [None] * len(rows)
    for positions, members in groups:
        assert positions.tolist() == sorted(positions.tolist())
        for position, row in zip(positions.tolist(), members.tolist(), strict=True):
            rebuilt[position] = row
    assert rebuilt == [list(r) for r in rows]


@pytest.mark.parametrize("n_variables", [6, 400])
def test_numpy_integers_tensor_rows_and_ragged_lists_parse_like_tuples(n_variables):
    """numpy integer entries, a tuple of 1-D tensors, ragged lists of lists and 0-d integer
    tensors or arrays (anything with `__index__`) give the members of the same list of tuples;
    400 variables take indices above 255."""
    top = n_variables - 1
    rows = [(0, 1, top), (3, 4), (top, 2, 0, 1), (1, 3)]
    expected = [([0], [[0, 1, top]]), ([1, 3], [[3, 4], [1, 3]]), ([2], [[top, 2, 0, 1]])]
    for form in (
        rows,
        [tuple(np.int64(v) for v in r) for r in rows],
        [[np.uint16(v) for v in r] for r in rows],
        tuple(torch.tensor(r) for r in rows),
        [list(r) for r in rows],
        [tuple(torch.tensor(v) for v in r) for r in rows],
        [[np.array(v, dtype=np.int32) for v in r] for r in rows],
    ):
        got = [(p.tolist(), m.tolist()) for p, m in parse_multiplets(form, n_variables)]
        assert got == expected


def test_none_means_all_variables():
    ((positions, members),) = parse_multiplets(None, 5)
    assert positions.tolist() == [0]
    assert members.tolist() == [[0, 1, 2, 3, 4]]


# --- bad multiplets -------------------------------------------------------------------------------


@pytest.fixture
def x():
    return np.random.default_rng(2).standard_normal((100, 5))


@pytest.mark.parametrize(
    ("multiplets", "message"),
    [
        ([(0, 1, 1)], r"multiplet [0, 1, 1] repeats a variable"),
        ([(0, 1, 2), (3, 2, 3)], r"multiplet [3, 2, 3] repeats a variable"),
        ([(0, 1, 5)], r"multiplet [0, 1, 5] has index 5 out of range for 5 variables"),
        (
            [(0, 1, 2), (7, 1, 2, 3)],
            r"multiplet [7, 1, 2, 3] has index 7 out of range for 5 variables",
        ),
        ([(0, -1, 2)], r"multiplet [0, -1, 2] has index -1 out of range for 5 variables"),
        (np.array([[0, 1, 2], [4, 3, 9]]), r"multiplet [4, 3, 9] has index 9 out of range"),
        (torch.tensor([[0, 2, 2]]), r"multiplet [0, 2, 2] repeats a variable"),
        ([(3,)], "multiplets need at least 2 variables, got a multiplet of size 1"),
        ([], "multiplets is empty"),
        (np.zeros((0, 3), dtype=int), "non-empty [M, k] index array, got shape (0, 3)"),
        (np.array([0, 1, 2]), "non-empty [M, k] index array, got shape (3,)"),
        ([(0, 1, 2), (4, 3, 300)], "multiplet [4, 3, 300] has index 300 out of range"),
        ([(0, 1)] * 300 + [(2, -3)], "multiplet [2, -3] has index -3 out of range"),
        ([(0, 1, 5), (3,)], "multiplet [0, 1, 5] has index 5 out of range"),
    ],
    ids=[
        "duplicate",
        "duplicate-second-row",
        "out-of-range",
        "out-of-range-mixed-sizes",
        "negative",
        "out-of-range-array",
        "duplicate-tensor",
        "singleton",
        "empty-list",
        "empty-array",
        "one-dimensional-array",
        "above-255",
        "negative-late-in-a-long-list",
        "first-size-checked-first",
    ],
)
def test_bad_indices_raise_value_error_naming_them(x, multiplets, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        oinfo(x, multiplets)


@pytest.mark.parametrize(
    ("multiplets", "message"),
    [
        (np.array([[0.0, 1.0, 2.0]]), "multiplets must be integers, got dtype torch.float64"),
        (torch.tensor([[0.0, 1.0, 2.0]]), "multiplets must be integers, got dtype torch.float32"),
        (np.array([[True, False, True]]), "multiplets must be integers, got dtype torch.bool"),
        ([(0, 1, 2), (0, 1.0, 2)], "multiplet 1 has a non-integer index 1.0"),
        ([(0, 1, 2), (True, 1, 2)], "multiplet 1 has a non-integer index True"),
        ([(0, 1, 2), 3], "multiplet 1 must be a sequence of indices, got 3"),
        ([(0, 1, 2), "abc"], "multiplet 1 has a non-integer index 'a'"),
        (np.array([["0", "1", "2"]]), "multiplets must hold real numbers"),
        ([(0, 1)] * 500 + [(1, False)], "multiplet 500 has a non-integer index False"),
        ([(0, 1, 2), (0, np.True_, 2)], "multiplet 1 has a non-integer index np.True_"),
        ([(0, 1)] * 500 + [(2.0, 1)], "multiplet 500 has a non-integer index 2.0"),
        ([(0, 1, 2), (0, np.float64(1), 2)], "multiplet 1 has a non-integer index np.float64(1.0)"),
        ([[0, 1], [2, [3, 4]]], "multiplet 1 has a non-integer index [3, 4]"),
        (
            (torch.tensor([0, 1]), torch.tensor([True, False])),
            "multiplet 1 has a non-integer index True",
        ),
        ([(0, 1), (torch.tensor(True), 2)], "multiplet 1 has a non-integer index tensor(True)"),
        ([(0, 1), (torch.tensor(2.0), 1)], "multiplet 1 has a non-integer index tensor(2.)"),
        ([(0, 1), (np.array(False), 2)], "multiplet 1 has a non-integer index array(False)"),
        ([(0, 300)] * 10 + [(299, True)], "multiplet 10 has a non-integer index True"),
        ([(0, 1), {2, 3}], "multiplet 1 must be a sequence of indices, got {2, 3}"),
    ],
    ids=[
        "float-array",
        "float-tensor",
        "bool-array",
        "float-entry",
        "bool-entry",
        "scalar-row",
        "string-row",
        "string-array",
        "bool-late-in-a-long-list",
        "numpy-bool",
        "float-late-in-a-long-list",
        "numpy-float",
        "nested-row",
        "bool-tensor-row",
        "zero-d-bool-tensor",
        "zero-d-float-tensor",
        "zero-d-bool-array",
        "bool-among-indices-above-255",
        "set-row",
    ],
)
def test_non_integer_multiplets_raise_type_error(x, multiplets, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        oinfo(x, multiplets)
