"""recommend_products: a small TensorFlow recommender on real customers, served through ONNX Runtime in DuckDB."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import onnxruntime as ort
import pytest
from scipy import sparse

from duckmkt.errors import FeatureError
from duckmkt.recommend import baselines, data, metrics
from duckmkt.recommend.scoring import register_recommender
from duckmkt.recommend.trainer import PARITY_TOLERANCE, train_recommender
from duckmkt.sql_views import sql_dir

RECOMMEND_ALL = """
select customer_id, recommend_products(customer_id, 5) as items
from (select distinct customer_id from mkt.int_sales)
order by customer_id
"""


# Progress events of the recommender_result training run, in order.
PROGRESS_EVENTS: list = []


@pytest.fixture(scope="session")
def recommender_result(tmp_path_factory, small_db):
    con = duckdb.connect(str(small_db), read_only=True)
    try:
        return train_recommender(
            con,
            models_dir=tmp_path_factory.mktemp("recommender_models"),
            epochs=3,
            hidden_units=(8,),
            min_customers=2,
            step_days=30,
            progress=PROGRESS_EVENTS.append,
        )
    finally:
        con.close()


def test_train_recommender_reports_progress(recommender_result):
    from duckmkt.training.trainer import DataProgress, EpochProgress

    steps = [event for event in PROGRESS_EVENTS if isinstance(event, DataProgress)]
    epochs = [event for event in PROGRESS_EVENTS if isinstance(event, EpochProgress)]

    # One step per cutoff, the last one the validation block, all before the first epoch.
    assert PROGRESS_EVENTS[: len(steps)] == steps
    assert len(steps) >= 2
    assert [step.validation for step in steps] == [False] * (len(steps) - 1) + [True]
    assert steps[-1].rows == recommender_result.n_validation_rows
    assert [event.epoch for event in epochs] == list(range(1, recommender_result.n_epochs + 1))
    assert steps[-1].message().startswith("Read the validation rows at cutoff")


@pytest.fixture
def recommend_con(small_db_copy, recommender_result):
    con = duckdb.connect(str(small_db_copy))
    register_recommender(con, recommender_result.model_dir)
    yield con
    con.close()


def recent_purchases(con, days: int) -> dict[str, set[str]]:
    rows = con.execute(
        """
        select customer_id, product_id
        from mkt.int_sales
        where ordered_at >= (select max(ordered_at)::date + interval 1 day from mkt.int_sales) - to_days(?)
        """,
        [days],
    ).fetchall()
    bought: dict[str, set[str]] = {}
    for customer_id, product_id in rows:
        bought.setdefault(customer_id, set()).add(product_id)
    return bought


def test_train_recommender_onnx_parity(recommender_result):
    assert recommender_result.n_products > 50
    assert recommender_result.n_train_rows > 0
    assert recommender_result.parity_max_abs_diff <= PARITY_TOLERANCE


def test_recommend_products_returns_k_items(recommend_con):
    rows = recommend_con.execute(RECOMMEND_ALL).fetchall()

    assert len(rows) > 100
    assert all(len(items) == 5 for _customer, items in rows)
    assert all(len({item["product_id"] for item in items}) == 5 for _customer, items in rows)
    assert all(items[0]["score"] >= items[-1]["score"] for _customer, items in rows)
    assert {item["reason"] for _customer, items in rows for item in items} <= {
        "bought_before", "similar_to_history", "popular_in_segment"
    }


def test_recommend_products_result_type(recommend_con):
    column_type = recommend_con.execute("select typeof(recommend_products('x', 3))").fetchall()[0][0]

    assert column_type == "STRUCT(product_id VARCHAR, score DOUBLE, reason VARCHAR)[]"


def test_recommend_products_excludes_recent_purchases(recommend_con):
    recent = recent_purchases(recommend_con, data.EXCLUDE_RECENT_DAYS)
    rows = recommend_con.execute(RECOMMEND_ALL).fetchall()
    checked = [customer for customer, _items in rows if customer in recent]

    assert len(checked) > 10
    for customer, items in rows:
        assert not {item["product_id"] for item in items} & recent.get(customer, set()), customer


def test_recommend_products_excludes_non_product_codes(recommend_con):
    first = recommend_con.execute(RECOMMEND_ALL).fetchall()
    top_product = first[0][1][0]["product_id"]
    recommend_con.execute("insert into mkt.non_product_codes values (?, 'test exclusion')", [top_product])
    second = recommend_con.execute(RECOMMEND_ALL).fetchall()

    assert all(top_product not in {item["product_id"] for item in items} for _customer, items in second)


def test_recommend_products_matches_onnx_runtime(recommend_con, recommender_result):
    import json

    metadata = json.loads((recommender_result.model_dir / "metadata.json").read_text())
    vocabulary = metadata["feature_names"]
    cutoff = data.latest_cutoff(recommend_con)
    rows = data.read_history(recommend_con, cutoff, vocabulary)
    customer = next(
        customer_id for row, customer_id in enumerate(rows.customer_ids) if rows.history[row].nnz > 0 and rows.recent[row].nnz == 0
    )
    row = rows.customer_ids.index(customer)
    inputs = rows.model_inputs([row])
    inputs["popularity"] = data.read_popularity(recommend_con, cutoff, vocabulary)
    session = ort.InferenceSession(str(recommender_result.model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(["scores"], inputs)[0][0]
    items = recommend_con.execute("select recommend_products(?, 10)", [customer]).fetchall()[0][0]
    expected_top = [vocabulary[column] for column in np.argsort(-expected, kind="stable")[:10]]

    assert [item["product_id"] for item in items] == expected_top
    for item in items:
        assert item["score"] == pytest.approx(float(expected[vocabulary.index(item["product_id"])]), abs=1e-6)


def reference_recommendations(con, model_dir: Path, customer_ids: list[str], k: int) -> dict[str, list[tuple[str, str, float]]]:
    """Return (product_id, reason, score) lists computed one customer at a time from the views, as the docs define them."""
    metadata = json.loads((model_dir / "metadata.json").read_text())
    vocabulary = metadata["feature_names"]
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    cutoff = con.execute("select max(ordered_at)::date + interval 1 day from mkt.int_sales").fetchall()[0][0]
    history = data.read_history(con, cutoff, vocabulary)
    popularity = data.read_popularity(con, cutoff, vocabulary)
    recent = recent_purchases(con, data.EXCLUDE_RECENT_DAYS)
    bought: dict[str, set[str]] = {}
    for customer_id, product_id in con.execute("select distinct customer_id, product_id from mkt.int_sales").fetchall():
        bought.setdefault(customer_id, set()).add(product_id)
    non_products = {
        row[0]
        for row in con.execute(
            """
            select product_id from unnest(?::varchar[]) as vocabulary(product_id)
            where exists (
                select 1 from mkt.non_product_codes as codes
                where regexp_full_match(upper(product_id), upper(codes.pattern))
            )
            """,
            [vocabulary],
        ).fetchall()
    }
    segments = dict(con.execute("select customer_id, segment from mkt.customer_segments").fetchall())
    popular: dict[str, list[tuple[str, float]]] = {}
    for segment, product_id, popularity_count, top_count in con.execute(
        """
        select segment, product_id, popularity, max(popularity) over (partition by segment)
        from mkt.segment_popular_products_at(?, ?)
        order by segment, popularity_rank
        """,
        [cutoff, data.POPULARITY_WINDOW_DAYS],
    ).fetchall():
        popular.setdefault(segment, []).append((product_id, popularity_count / top_count))
    row_of = {customer_id: row for row, customer_id in enumerate(history.customer_ids)}

    expected = {}
    for customer_id in customer_ids:
        row = row_of.get(customer_id)
        excluded = recent.get(customer_id, set())
        if row is not None and history.history[row].nnz > 0:
            inputs = history.model_inputs([row])
            inputs["popularity"] = popularity
            scores = session.run(["scores"], inputs)[0][0]
            ranked = sorted(range(len(vocabulary)), key=lambda column: -scores[column])
            blocked = excluded | non_products
            allowed = [column for column in ranked if vocabulary[column] not in blocked]
            expected[customer_id] = [
                (
                    vocabulary[column],
                    "bought_before" if vocabulary[column] in bought.get(customer_id, set()) else "similar_to_history",
                    float(scores[column]),
                )
                for column in allowed[:k]
            ]
            continue
        chosen: list[tuple[str, str, float]] = []
        for product_id, score in popular.get(segments.get(customer_id, "all"), []) + popular["all"]:
            if len(chosen) < k and product_id not in excluded and product_id not in {item[0] for item in chosen}:
                chosen.append((product_id, "popular_in_segment", score))
        expected[customer_id] = chosen
    return expected


def test_recommend_products_matches_reference(recommend_con, recommender_result):
    customer_ids = [row[0] for row in recommend_con.execute("select distinct customer_id from mkt.int_sales order by 1").fetchall()]
    customer_ids += ["never-seen"]
    expected = reference_recommendations(recommend_con, recommender_result.model_dir, customer_ids, 10)
    # Each customer repeated to more rows than the 2,048 DuckDB passes to one
    # UDF call, so later calls reuse what the first one read.
    repeats = 2048 // len(customer_ids) + 1
    rows = recommend_con.execute(
        """
        select customer_id, recommend_products(customer_id, 10) as items
        from unnest(?::varchar[]) as customers(customer_id), range(?)
        """,
        [customer_ids, repeats],
    ).fetchall()
    fallback = [customer for customer, items in expected.items() if items and items[0][1] == "popular_in_segment"]

    assert len(rows) > 2048
    assert len(fallback) >= 1
    assert len(expected) - len(fallback) > 300
    for customer_id, items in rows:
        assert [(item["product_id"], item["reason"]) for item in items] == [
            (product_id, reason) for product_id, reason, _score in expected[customer_id]
        ], customer_id
        assert [item["score"] for item in items] == pytest.approx([score for _product, _reason, score in expected[customer_id]], abs=1e-6)


def test_recommend_products_reads_changed_order_lines(recommend_con):
    customer = recommend_con.execute("select min(customer_id) from mkt.int_sales").fetchall()[0][0]
    before = recommend_con.execute("select recommend_products(?, 5)", [customer]).fetchall()[0][0]
    recommend_con.execute("delete from raw.order_lines where trim(customer_id) = ?", [customer])
    after = recommend_con.execute("select recommend_products(?, 5)", [customer]).fetchall()[0][0]

    assert {item["reason"] for item in before} <= {"bought_before", "similar_to_history"}
    assert {item["reason"] for item in after} == {"popular_in_segment"}


def test_recommend_products_with_old_macros(small_db, tmp_path, recommender_result, caplog):
    # A database written by an older duckmkt: product_history_at without staged_lines.
    old_db = tmp_path / "old.duckdb"
    shutil.copy(small_db, old_db)
    con = duckdb.connect(str(old_db))
    macro = (Path(sql_dir()) / "actions" / "product_history_at.sql").read_text()
    old_macro = macro.replace(", staged_lines := 'mkt.stg_order_lines'", "").replace("query_table(staged_lines)", "mkt.stg_order_lines")
    assert old_macro != macro
    con.execute(old_macro)
    expected = reference_recommendations(con, recommender_result.model_dir, ["never-seen"], 5)
    con.close()

    con = duckdb.connect(str(old_db), read_only=True)
    try:
        with caplog.at_level("WARNING", logger="duckmkt.recommend.scoring"):
            recommender = register_recommender(con, recommender_result.model_dir)
        rows = con.execute(RECOMMEND_ALL).fetchall()
        unknown = con.execute("select recommend_products('never-seen', 5)").fetchall()[0][0]
    finally:
        con.close()
    current = duckdb.connect(str(small_db), read_only=True)
    try:
        register_recommender(current, recommender_result.model_dir)
        current_rows = current.execute(RECOMMEND_ALL).fetchall()
    finally:
        current.close()

    assert "predate cached order lines" in caplog.text
    assert not recommender.stages_lines
    assert [(customer, [item["product_id"] for item in items]) for customer, items in rows] == [
        (customer, [item["product_id"] for item in items]) for customer, items in current_rows
    ]
    assert [item["product_id"] for item in unknown] == [product_id for product_id, _reason, _score in expected["never-seen"]]


def test_recommend_products_does_not_import_tensorflow(small_db, recommender_result):
    script = f"""
import sys, duckdb
from duckmkt.recommend.scoring import register_recommender
con = duckdb.connect({str(small_db)!r}, read_only=True)
register_recommender(con, {str(recommender_result.model_dir)!r})
rows = con.execute("select recommend_products(customer_id, 3) from (select distinct customer_id from mkt.int_sales)").fetchall()
assert len(rows) > 0
loaded = sorted(name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx'))
print('loaded:', loaded)
sys.exit(1 if loaded else 0)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr


def test_recommend_products_new_customer_gets_segment_popular(recommend_con):
    recommend_con.execute(
        """
        insert into raw.customers (load_id, source_file, source_line, customer_id, country)
        values ('test', 'test', 1, 'new-customer-fr', 'France')
        """
    )
    cutoff = data.latest_cutoff(recommend_con)
    popular = recommend_con.execute(
        """
        select product_id from mkt.segment_popular_products_at(?, ?)
        where segment = 'France' order by popularity_rank limit 3
        """,
        [cutoff, data.POPULARITY_WINDOW_DAYS],
    ).fetchall()
    items = recommend_con.execute("select recommend_products('new-customer-fr', 3)").fetchall()[0][0]
    unknown = recommend_con.execute("select recommend_products('never-seen', 3)").fetchall()[0][0]
    overall = recommend_con.execute(
        "select product_id from mkt.segment_popular_products_at(?, ?) where segment = 'all' order by popularity_rank limit 3",
        [cutoff, data.POPULARITY_WINDOW_DAYS],
    ).fetchall()

    assert len(popular) == 3
    assert [item["product_id"] for item in items] == [row[0] for row in popular]
    assert {item["reason"] for item in items} == {"popular_in_segment"}
    assert [item["product_id"] for item in unknown] == [row[0] for row in overall]


def test_recommend_products_null_id(recommend_con):
    rows = recommend_con.execute("select recommend_products(null::varchar, 3)").fetchall()

    assert rows == [(None,)]


def test_recommend_products_untyped_null_id(recommend_con):
    rows = recommend_con.execute("select recommend_products(null, 3)").fetchall()

    assert rows == [(None,)]


def test_recommend_products_null_k_means_ten(recommend_con):
    customer = recommend_con.execute("select customer_id from mkt.customer_features order by customer_id limit 1").fetchall()[0][0]

    with_null = recommend_con.execute("select recommend_products(?, null)", [customer]).fetchall()[0][0]
    with_ten = recommend_con.execute("select recommend_products(?, 10)", [customer]).fetchall()[0][0]

    assert len(with_null) == 10
    assert with_null == with_ten


def test_recommend_products_k_out_of_range(recommend_con):
    with pytest.raises(duckdb.Error, match="between 0 and"):
        recommend_con.execute("select recommend_products('x', -1)").fetchall()


def test_register_recommender_without_model(tmp_path):
    con = duckdb.connect()

    assert register_recommender(con, models_dir=tmp_path) is None


def test_recall_and_ndcg_known_values():
    ranked = np.array([[0, 1, 2], [2, 1, 0]])
    targets = sparse.csr_matrix(np.array([[1, 0, 1], [0, 0, 0]], dtype=np.float32))
    recall, ndcg = metrics.recall_and_ndcg(ranked, targets, 2)

    # Row 0: hits at ranks 1 and 2 are [1, 0] over two targets; row 1 has no target.
    assert recall == pytest.approx(0.5)
    assert ndcg == pytest.approx(1.0 / (1.0 + 1.0 / np.log2(3)))


def test_top_k_skips_masked_columns():
    scores = np.array([[0.9, 0.8, 0.1]])
    ranked = metrics.top_k(scores, 2, np.array([[1, 0, 0]]))

    assert ranked.tolist() == [[1, 2]]


def test_co_purchase_baseline_scores_bought_together():
    incidence = sparse.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32))
    similarity = baselines.cosine_similarity(incidence)
    scores = baselines.co_purchase_scores(sparse.csr_matrix(np.array([[1, 0, 0]], dtype=np.float32)), similarity)

    assert scores[0, 1] == pytest.approx(1.0)
    assert scores[0, 2] == pytest.approx(0.0)


def test_scoring_register_adds_recommend_products(small_db_copy, trained_model_dir, recommender_result):
    from duckmkt.scoring import register

    con = duckdb.connect(str(small_db_copy))
    register(con, trained_model_dir, models_dir=recommender_result.model_dir.parents[1])
    items = con.execute("select recommend_products(min(customer_id), 4) from mkt.int_sales").fetchall()[0][0]
    con.close()

    assert len(items) == 4


def test_product_history_order_count_and_age(small_db):
    con = duckdb.connect(str(small_db), read_only=True)
    cutoff = "2011-09-01"
    expected = dict(
        ((customer, product), (orders, days))
        for customer, product, orders, days in con.execute(
            """
            select customer_id, product_id, count(distinct order_id),
                (epoch(?::timestamp) - epoch(max(ordered_at))) / 86400.0
            from mkt.int_sales where ordered_at < ?::timestamp
            group by all
            """,
            [cutoff, cutoff],
        ).fetchall()
    )
    vocabulary = data.build_vocabulary(con, cutoff, 1)
    rows = data.read_history(con, cutoff, vocabulary)
    con.close()
    inputs = rows.model_inputs()
    column = {product: index for index, product in enumerate(vocabulary)}
    row = {customer: index for index, customer in enumerate(rows.customer_ids)}

    assert len(expected) > 1000
    assert int(inputs["order_count"].sum()) == sum(orders for orders, _days in expected.values())
    for (customer, product), (orders, days) in list(expected.items())[:200]:
        assert inputs["order_count"][row[customer], column[product]] == orders
        assert inputs["days_since_purchase"][row[customer], column[product]] == pytest.approx(days, abs=1e-3)


def test_read_popularity_matches_segment_macro(small_db):
    con = duckdb.connect(str(small_db), read_only=True)
    cutoff = data.latest_cutoff(con)
    vocabulary = data.build_vocabulary(con, cutoff, 2)
    popularity = data.read_popularity(con, cutoff, vocabulary, (30, 90))
    expected = dict(
        con.execute(
            "select product_id, popularity from mkt.segment_popular_products_at(?, 90) where segment = 'all'", [cutoff]
        ).fetchall()
    )
    con.close()

    assert popularity.shape == (len(vocabulary), 2)
    assert (popularity[:, 0] <= popularity[:, 1]).all()
    assert popularity[:, 0].sum() < popularity[:, 1].sum()
    for index, product in enumerate(vocabulary):
        assert popularity[index, 1] == expected.get(product, 0), product


def test_recommender_onnx_reads_every_input(recommender_result, small_db):
    import json

    metadata = json.loads((recommender_result.model_dir / "metadata.json").read_text())
    session = ort.InferenceSession(str(recommender_result.model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    con = duckdb.connect(str(small_db), read_only=True)
    cutoff = data.latest_cutoff(con)
    rows = data.read_history(con, cutoff, metadata["feature_names"])
    inputs = rows.model_inputs(slice(0, 50))
    inputs["popularity"] = data.read_popularity(con, cutoff, metadata["feature_names"])
    con.close()
    baseline = session.run(["scores"], inputs)[0]

    assert [graph_input.name for graph_input in session.get_inputs()] == metadata["input_names"]
    assert np.allclose(baseline.sum(axis=1), 1.0, atol=1e-4)
    for name in metadata["input_names"]:
        changed = dict(inputs)
        changed[name] = inputs[name] * 2.0 + 1.0
        assert np.abs(session.run(["scores"], changed)[0] - baseline).max() > 1e-6, name


def test_recommender_co_purchase_constant_matches_baseline(small_db):
    from duckmkt.recommend.trainer import _similarity_at

    con = duckdb.connect(str(small_db), read_only=True)
    cutoff = data.latest_cutoff(con)
    vocabulary = data.build_vocabulary(con, cutoff, 2)
    similarity = _similarity_at(con, cutoff, vocabulary)
    rows = data.read_history(con, cutoff, vocabulary)
    con.close()
    expected = baselines.cosine_similarity(rows.bought).toarray()

    assert similarity.shape == (len(vocabulary), len(vocabulary))
    assert np.allclose(similarity, expected, atol=1e-6)
    assert np.allclose(np.diag(similarity), 1.0, atol=1e-6)


def test_models_list_shows_trained_recommender(small_db_copy, tmp_path, capsys):
    from duckmkt.action_commands import train_recommender_command
    from duckmkt.cli import activate_language
    from duckmkt.model_quality import models_list_command

    activate_language("en")
    result = train_recommender_command(
        small_db_copy, models_dir=tmp_path, epochs=2, hidden_units=(8,), min_customers=2, step_days=30
    )
    capsys.readouterr()
    rows = models_list_command(small_db_copy)
    english = capsys.readouterr().out
    activate_language("zh")
    try:
        models_list_command(small_db_copy)
        chinese = capsys.readouterr().out
    finally:
        activate_language("en")

    assert [(row[0], row[1], row[3], row[4]) for row in rows] == [("recommender", result.version, "recommender", "candidate")]
    assert "product recommender" in english
    assert "recommend_products uses the promoted product recommender version" in english
    assert "商品推荐模型" in chinese
    assert "product recommender" not in chinese


def test_promoted_recommender_used_by_recommend_products(small_db_copy, tmp_path, recommender_result):
    from duckmkt import registry

    # A copy saved as a later version, so the newest version is not the promoted one.
    models_dir = tmp_path / "models"
    older = models_dir / "recommender" / recommender_result.version
    newer = models_dir / "recommender" / "29990101T000000Z"
    shutil.copytree(recommender_result.model_dir, older)
    shutil.copytree(recommender_result.model_dir, newer)
    registry.write_metadata(newer, registry.load_metadata(newer) | {"version": newer.name})
    # As saved before recommenders had model_kind, with only the "kind" key.
    metadata = registry.load_metadata(older)
    del metadata["model_kind"]
    registry.write_metadata(older, metadata)
    con = duckdb.connect(str(small_db_copy))
    try:
        newest = register_recommender(con, models_dir=models_dir)
        registry.promote(con, "recommender", older.name, models_dir=models_dir)
        promoted = register_recommender(con, models_dir=models_dir)
        kinds = con.execute("select version, model_kind, status from mkt.models where name = 'recommender'").fetchall()
    finally:
        con.close()

    assert newest.version == newer.name
    assert promoted.version == older.name
    assert kinds == [(older.name, "recommender", "promoted")]


# Prefixes of TensorFlow's C++ log lines (absl and glog style, as
# "I0000 00:00:1796453930.905669   27136 port.cc:153] ...").
NATIVE_LOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d", re.MULTILINE)


def test_train_recommender_cli_stderr_has_no_tensorflow_lines(small_db_copy, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "duckmkt", "train-recommender", str(small_db_copy), "--models-dir", str(tmp_path), "--epochs", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr
    assert "Recommender saved to" in result.stdout
    assert "Epoch 1/1" in result.stdout
    assert not NATIVE_LOG_LINE.search(result.stderr), result.stderr
    assert "absl" not in result.stderr
    assert "oneDNN" not in result.stderr
    assert "tensorflow" not in result.stderr.lower()


def test_recommend_products_fallback_skips_recent_new_product(recommend_con):
    # A product first sold after training is outside the model's vocabulary.
    # Bought by 300 new customers on the last day, it tops the popular list,
    # and one of them must not be offered it again.
    last_day = recommend_con.execute("select max(ordered_at)::date from mkt.int_sales").fetchall()[0][0]
    recommend_con.execute(
        """
        insert into raw.order_lines
        select 'test', 'new_product.csv', k, 'new-buyer-' || k, 'N' || k, ?::varchar || ' 10:00:00',
               'NEWPROD-1', '1', '2.50', 'NEW PRODUCT', 'United Kingdom'
        from range(300) as keys (k)
        """,
        [str(last_day)],
    )
    cutoff = data.latest_cutoff(recommend_con)
    popular = recommend_con.execute(
        "select product_id from mkt.segment_popular_products_at(?, ?) where segment = 'all' order by popularity_rank limit 3",
        [cutoff, data.POPULARITY_WINDOW_DAYS],
    ).fetchall()

    buyer = recommend_con.execute("select recommend_products('new-buyer-7', 5)").fetchall()[0][0]
    stranger = recommend_con.execute("select recommend_products('never-seen', 5)").fetchall()[0][0]

    assert ("NEWPROD-1",) in popular
    assert "NEWPROD-1" in [item["product_id"] for item in stranger]
    assert "NEWPROD-1" not in [item["product_id"] for item in buyer]
    assert len(buyer) == 5
