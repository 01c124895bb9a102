"""Top-k ranking metrics for next-period purchases."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def top_k(scores: np.ndarray, k: int, mask: sparse.csr_matrix | np.ndarray | None = None) -> np.ndarray:
    """Return the column indices of the ``k`` highest scores of each row, best first; masked cells never appear."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    if mask is not None:
        dense_mask = mask.toarray() if sparse.issparse(mask) else np.asarray(mask)
        scores[dense_mask > 0] = -np.inf
    k = min(k, scores.shape[1])
    candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, candidates, axis=1), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def recall_and_ndcg(ranked: np.ndarray, targets: sparse.csr_matrix, k: int) -> tuple[float, float]:
    """Return mean recall@k and NDCG@k over the rows with at least one target.

    recall@k is hits / min(k, number of targets), so a perfect ranking
    scores 1 even for customers with more than k targets. NDCG@k uses
    binary gains and log2(rank + 1) discounts.
    """
    targets = targets.tocsr()
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    recalls, ndcgs = [], []
    for row in range(targets.shape[0]):
        relevant = set(targets.indices[targets.indptr[row] : targets.indptr[row + 1]].tolist())
        if not relevant:
            continue
        hits = np.array([column in relevant for column in ranked[row, :k]], dtype=np.float64)
        ideal = discounts[: min(k, len(relevant))].sum()
        recalls.append(hits.sum() / min(k, len(relevant)))
        ndcgs.append(float((hits * discounts[: len(hits)]).sum() / ideal))
    if not recalls:
        return float("nan"), float("nan")
    return float(np.mean(recalls)), float(np.mean(ndcgs))
