"""Data-quality flags carried by each score: imputed and out-of-range features.

A feature is imputed when its input is NULL, NaN or infinite: the model
replaces it with the training median (metadata ``imputation``). A feature is
out of range when its finite input lies outside the training range (metadata
``feature_ranges``): the model clips it to the edge of ``clip_range``, so the
score treats it as the most extreme training value. Features that the model
ignores (``unused_features``, no value in any training row) are never
flagged, because their input does not change the score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa


def feature_bounds(metadata: Mapping[str, object], feature_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return float32 arrays (minimum, maximum, used) of the training ranges in ``feature_names`` order."""
    ranges = metadata.get("feature_ranges", {})
    unused = set(metadata.get("unused_features", []))
    minimum = np.full(len(feature_names), -np.inf, dtype=np.float32)
    maximum = np.full(len(feature_names), np.inf, dtype=np.float32)
    used = np.array([name not in unused for name in feature_names])
    for column, name in enumerate(feature_names):
        bounds = ranges.get(name) or {}
        if bounds.get("min") is not None:
            minimum[column] = bounds["min"]
        if bounds.get("max") is not None:
            maximum[column] = bounds["max"]
    return minimum, maximum, used


@lru_cache(maxsize=16)
def _names_array(feature_names: tuple[str, ...]) -> pa.StringArray:
    """Return the feature names as one Arrow array, built once per model rather than per batch."""
    return pa.array(feature_names, type=pa.string())


def _names_per_row(mask: np.ndarray, names: pa.StringArray, *, dictionary: bool) -> pa.ListArray:
    """Return, for each row of a boolean [N, F] mask, the list of feature names where it is true.

    The true cells are found on the flattened mask, which NumPy scans about
    ten times faster than it finds row and column pairs in two dimensions.
    With ``dictionary``, the lists hold indices into ``names`` instead of
    copies of the names.
    """
    n_rows, n_columns = mask.shape
    flat = np.flatnonzero(mask)
    rows, columns = np.divmod(flat, n_columns)
    offsets = np.zeros(n_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=offsets[1:])
    if dictionary:
        values = pa.DictionaryArray.from_arrays(pa.array(columns.astype(np.int32)), names)
    else:
        values = names.take(pa.array(columns))
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def data_quality_flags(
    matrix: np.ndarray,
    metadata: Mapping[str, object],
    feature_names: Sequence[str],
    bounds: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    *,
    dictionary: bool = False,
) -> tuple[pa.ListArray, pa.ListArray]:
    """Return (imputed_features, out_of_range_features) lists for each row of the float32 feature matrix.

    ``bounds`` is ``feature_bounds(metadata, feature_names)``, which a caller
    scoring many batches computes once. ``dictionary`` encodes the names as
    indices into one array of names (see ``_names_per_row``).
    """
    minimum, maximum, used = feature_bounds(metadata, feature_names) if bounds is None else bounds
    # In-place operators: each temporary of a 2,048-row batch costs about as
    # much as the comparison that fills it.
    not_finite = ~np.isfinite(matrix)
    imputed = not_finite & used
    with np.errstate(invalid="ignore"):
        out_of_range = matrix < minimum
        out_of_range |= matrix > maximum
    out_of_range &= used
    out_of_range &= ~not_finite
    names = _names_array(tuple(feature_names))
    return _names_per_row(imputed, names, dictionary=dictionary), _names_per_row(out_of_range, names, dictionary=dictionary)
