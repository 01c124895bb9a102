"""Baselines for the recommender, computed on the same history rows.

* Popularity: the products bought by the most distinct customers in the
  window before the cutoff, the same list for everyone.
* Item-to-item co-purchase: cosine similarity between products over the
  customer x product purchase incidence before the cutoff. A customer's
  score for a product is the sum of its similarities to the products in the
  customer's history, weighted by the history weights. A product's
  similarity to itself is 1, so repeat purchases score as well.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def popularity_scores(recent_incidence: sparse.csr_matrix) -> np.ndarray:
    """Return one score per product: distinct customers with a purchase in ``recent_incidence``."""
    return np.asarray((recent_incidence > 0).sum(axis=0), dtype=np.float64).ravel()


def cosine_similarity(incidence: sparse.csr_matrix) -> sparse.csr_matrix:
    """Return the product x product cosine similarity of a binary customer x product matrix."""
    binary = (incidence > 0).astype(np.float32).tocsc()
    norms = np.sqrt(np.asarray(binary.multiply(binary).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    scaled = binary @ sparse.diags(1.0 / norms)
    return (scaled.T @ scaled).tocsr()


def co_purchase_scores(history: sparse.csr_matrix, similarity: sparse.csr_matrix) -> np.ndarray:
    """Return customers x products scores: history weights times item-to-item similarity."""
    return np.asarray((history @ similarity).todense(), dtype=np.float64)
