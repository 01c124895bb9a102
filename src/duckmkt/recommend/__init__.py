"""Product recommendations: a TensorFlow model over purchase and browsing history, served by ONNX Runtime.

* ``data``: product vocabulary, history and target matrices read from SQL
  (``mkt.product_history_at``), shared by training, scoring and evaluation.
* ``trainer``: trains the network, exports it with tf2onnx, checks parity
  and saves it in the model registry (imports TensorFlow).
* ``scoring``: the ``recommend_products(customer_id, k)`` DuckDB UDF.
* ``baselines`` and ``metrics``: popularity and item-to-item co-purchase
  baselines, recall@k and NDCG@k, for the out-of-time benchmark.
"""

DEFAULT_MODEL_NAME = "recommender"
