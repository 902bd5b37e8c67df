"""metrics.own_item_ranks: where each query's own item ranks by cosine (query by excerpt)."""

from __future__ import annotations

import numpy as np

from qbsd_cli.training.metrics import own_item_ranks


def test_an_excerpt_pointing_at_its_own_clip_ranks_first_and_one_pointing_elsewhere_does_not():
    whole = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # the first excerpt is a scaled copy of its clip (cosine ignores length); the second leans
    # towards the third clip, so its own clip comes second; the third is its clip exactly
    excerpts = np.array([[5.0, 0.0, 0.0], [0.0, 0.5, 1.0], [0.0, 0.0, 2.0]])
    assert own_item_ranks(excerpts, whole, np.arange(3)).tolist() == [1, 2, 1]


def test_a_tie_counts_in_the_own_items_favour():
    whole = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    assert own_item_ranks(np.array([[2.0, 2.0]]), whole, np.array([1])).tolist() == [1]


def test_queries_may_be_a_subset_of_the_items():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(50, 8))
    own = np.array([3, 17, 42])
    assert own_item_ranks(items[own] * 3.0, items, own).tolist() == [1, 1, 1]
    # a query of the opposite direction finds its own item last
    assert own_item_ranks(-items[own], items, own).tolist() == [50, 50, 50]
