"""Logistic regression by Newton's method, in numpy (no TensorFlow)."""

from __future__ import annotations

import numpy as np


class LogisticRegressionIRLS:
    """Binary logistic regression fitted by Newton's method, with a small L2 penalty for stability.

    Parameters
    ----------
    l2 : float
        Penalty on the squared weights (not on the intercept).
    max_iter : int
        Maximum Newton steps.
    tol : float
        Stop when no weight moves by more than this.
    """

    def __init__(self, l2: float = 1e-4, max_iter: int = 50, tol: float = 1e-8):
        self.l2 = l2
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, x: np.ndarray, y: np.ndarray) -> LogisticRegressionIRLS:
        design = np.column_stack([np.ones(len(x)), np.asarray(x, dtype=np.float64)])
        y = np.asarray(y, dtype=np.float64).ravel()
        penalty = np.full(design.shape[1], self.l2)
        penalty[0] = 0.0

        weights = np.zeros(design.shape[1])
        for iteration in range(self.max_iter):
            prob = _sigmoid(design @ weights)
            gradient = design.T @ (prob - y) + penalty * weights
            hessian = (design * (prob * (1.0 - prob))[:, None]).T @ design + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hessian, gradient)
            weights -= step
            if np.max(np.abs(step)) < self.tol:
                break
        self.coef_ = weights[1:]
        self.intercept_ = float(weights[0])
        self.n_iter_ = iteration + 1
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return the probability of the positive class for each row."""
        return _sigmoid(np.asarray(x, dtype=np.float64) @ self.coef_ + self.intercept_)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))
