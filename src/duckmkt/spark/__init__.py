"""The Spark backend: the same features, labels and scores as DuckDB, on Apache Spark.

* ``duckmkt.spark.translate`` turns the DuckDB SQL of ``sql/`` into Spark SQL
  with sqlglot.
* ``duckmkt.spark.catalog`` registers the tables (Parquet) and the
  translated views in a SparkSession.
* ``duckmkt.spark.scoring`` scores with the ONNX model inside
  ``mapInArrow``.
* ``duckmkt.spark.training`` trains on the customer-level tables Spark
  computes.

PySpark is the optional extra ``spark``: ``pip install 'duckmkt[spark]'``.
Importing this package does not import PySpark.
"""
