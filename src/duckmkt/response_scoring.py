"""``score_response(features)``: the DuckDB UDF of a response model (``model_kind`` "response").

A response model, trained with ``duckmkt train DB --label ...``, has one
output, ``response_prob``. ``scoring.register`` registers this function in
place of ``score_customer`` when the chosen model is a response model. It
returns STRUCT(response_prob DOUBLE, model_version VARCHAR); a NULL struct
gives a NULL score. The sha256 of the model is checked before it is loaded.
"""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from duckmkt.errors import FeatureError
from duckmkt.i18n import _

logger = logging.getLogger(__name__)

RESPONSE_SCORE_TYPE = duckdb.struct_type({"response_prob": duckdb.sqltypes.DOUBLE, "model_version": duckdb.sqltypes.VARCHAR})
_RESPONSE_ARROW_TYPE = pa.struct([pa.field("response_prob", pa.float64()), pa.field("model_version", pa.string())])


def score_response_arrow(scorer, structs: pa.Array | pa.ChunkedArray) -> pa.StructArray:
    """Score a batch of feature structs with the response model behind ``scorer`` (a ``scoring.Scorer``)."""
    if isinstance(structs, pa.ChunkedArray):
        structs = structs.combine_chunks()
    if not pat.is_struct(structs.type):
        raise FeatureError(
            _("score_response expects a struct of features, for example score_response(f) with f a row of the feature query; it got {type}.").format(
                type=structs.type
            )
        )
    if len(structs) == 0:
        return pa.array([], type=_RESPONSE_ARROW_TYPE)

    matrix = scorer.feature_matrix(structs)
    input_name = scorer.metadata.get("input_name", "features")
    (probability,) = scorer.session.run(["response_prob"], {input_name: matrix})
    arrays = [
        pa.array(probability.reshape(-1).astype(np.float64)),
        pa.array([scorer.version] * len(structs), type=pa.string()),
    ]
    mask = structs.is_null() if structs.null_count else None
    return pa.StructArray.from_arrays(arrays, fields=list(_RESPONSE_ARROW_TYPE), mask=mask)


def register_response(con: duckdb.DuckDBPyConnection, scorer) -> None:
    """Register ``score_response`` on ``con`` for the loaded response model ``scorer``."""
    try:
        con.remove_function("score_response")
    except duckdb.InvalidInputException:
        pass

    def score_response(structs):
        return score_response_arrow(scorer, structs)

    # Imported here: duckmkt.scoring imports this module.
    from duckmkt.scoring import keep_alive

    keep_alive(score_response)
    con.create_function(
        "score_response",
        score_response,
        parameters=None,
        return_type=RESPONSE_SCORE_TYPE,
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
    logger.info("Registered score_response with model %s version %s", scorer.metadata.get("name"), scorer.version)
