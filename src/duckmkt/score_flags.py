"""Data-quality flags carried by each score: imputed and out-of-range features.

A feature is imputed when its input is NULL, NaN or infinite: the model
replaces it with the training median (metadata ``imputation``). A feature is
out of range when its finite input lies outside the training range (metadata
``feature_ranges``): the model clips it to the edge of ``clip_range``, so the
score treats it as the most extreme training value. Features that the model
ignores (``unused_features``, no value in any training row) are never
flagged, because their input does not change the score.

Features that move with the calendar (``features.calendar_range``) are
compared with the training range widened by what the days between the
training cutoff and the row's ``cutoff_date`` explain. Otherwise every
customer older than the training history would be flagged for tenure_days.
The model still clips such a value to the training range.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from datetime import date, datetime
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from duckmkt.features import calendar_range

Bounds = tuple[np.ndarray, np.ndarray, np.ndarray]


def feature_bounds(metadata: Mapping[str, object], feature_names: Sequence[str], cutoff: date | None = None) -> Bounds:
    """Return float32 arrays (minimum, maximum, used) of the training ranges in ``feature_names`` order.

    With ``cutoff``, the cutoff of the rows to check, the ranges of calendar
    features are widened from the model's training cutoff to it.
    """
    ranges = metadata.get("feature_ranges", {})
    unused = set(metadata.get("unused_features", []))
    train_cutoff = metadata.get("train_cutoff")
    minimum = np.full(len(feature_names), -np.inf, dtype=np.float32)
    maximum = np.full(len(feature_names), np.inf, dtype=np.float32)
    used = np.array([name not in unused for name in feature_names])
    for column, name in enumerate(feature_names):
        bounds = ranges.get(name) or {}
        if bounds.get("min") is None or bounds.get("max") is None:
            continue
        low, high = bounds["min"], bounds["max"]
        if cutoff is not None and train_cutoff:
            low, high = calendar_range(name, low, high, date.fromisoformat(train_cutoff), cutoff)
        minimum[column] = low
        maximum[column] = high
    return minimum, maximum, used


def row_bounds(
    metadata: Mapping[str, object],
    feature_names: Sequence[str],
    cutoffs: pa.Array | None,
    cache: MutableMapping[date | None, Bounds],
) -> Bounds:
    """Return the bounds of a batch whose rows have the feature cutoffs ``cutoffs`` (None when the struct has none).

    A batch at one cutoff, as every batch of mkt.customer_features is, gets
    the 1-D bounds of ``feature_bounds``. A batch at several cutoffs gets
    [N, F] minimum and maximum arrays. ``cache`` keeps the bounds of each
    cutoff for the next batch.
    """

    def bounds_at(value: object) -> Bounds:
        cutoff = _as_date(value)
        if cutoff not in cache:
            cache[cutoff] = feature_bounds(metadata, feature_names, cutoff)
        return cache[cutoff]

    if cutoffs is None or len(cutoffs) == 0:
        return bounds_at(None)
    distinct = pc.unique(cutoffs)
    if len(distinct) == 1:
        return bounds_at(distinct[0].as_py())
    per_cutoff = [bounds_at(value.as_py()) for value in distinct]
    rows = pc.index_in(cutoffs, value_set=distinct).to_numpy(zero_copy_only=False)
    minimum = np.stack([bounds[0] for bounds in per_cutoff])[rows]
    maximum = np.stack([bounds[1] for bounds in per_cutoff])[rows]
    return minimum, maximum, per_cutoff[0][2]


def _as_date(value: object) -> date | None:
    """Return a cutoff read from a struct field as a date; None for NULL or a type that is no date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return None


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
    bounds: Bounds | None = None,
    *,
    dictionary: bool = False,
) -> tuple[pa.ListArray, pa.ListArray]:
    """Return (imputed_features, out_of_range_features) lists for each row of the float32 feature matrix.

    ``bounds`` is ``feature_bounds(metadata, feature_names)`` or
    ``row_bounds(...)``, which a caller scoring many batches keeps. Its
    minimum and maximum are 1-D, or [N, F] for rows at several cutoffs.
    ``dictionary`` encodes the names as indices into one array of names
    (see ``_names_per_row``).
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
