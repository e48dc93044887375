"""`fairway monitor` pieces: request logs as rows, windows, the calculator's decisions on
census windows (clean, covariate shift, concept drift) at 200 and 5,000 rows, labels, history."""
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from monitoring import anomalies, history, monitor, requests, windows
from monitoring.calculator import Calculator, Reference
from pipeline import config
from pipeline.errors import FairwayError
from serving import rest

RAW = config.preset("census").dataset
pytestmark = pytest.mark.usefixtures("census_dir")  # most tests read the census CSVs


def eval_frame() -> pd.DataFrame:
    return pd.read_csv(config.data_home() / "census" / "eval" / "adult.test.csv",
                       keep_default_na=False).drop(columns=[RAW.label])


def write_log(path, frame: pd.DataFrame, version: int = 7, batch: int = 50, scores=None):
    """PredictionLogs exactly as `fairway serve` writes them for REST :predict requests."""
    with tf.io.TFRecordWriter(str(path)) as w:
        for start in range(0, len(frame), batch):
            part = frame.iloc[start:start + batch]
            inputs = {c: (np.array([v.encode() for v in part[c]], dtype=object)
                          if part[c].dtype == object else part[c].to_numpy(np.int64))
                      for c in part.columns}
            p = np.zeros(len(part)) if scores is None else scores[start:start + batch]
            log = rest.predict_log(inputs, {"probability": np.asarray(p, np.float32)},
                                   "serving_default")()
            log.log_metadata.model_spec.name = "census"
            log.log_metadata.model_spec.version.value = version
            w.write(log.SerializeToString())


def test_request_logs_become_rows_with_version_and_request_id(tmp_path):
    rows = eval_frame().head(120)
    write_log(tmp_path / "requests-a.tfrecord", rows)
    frame = requests.read(str(tmp_path))
    assert len(frame) == 120 and set(frame["_version"]) == {7}
    assert frame["_request_id"].iloc[51] == "requests-a.tfrecord:1:1"
    assert frame["age"].tolist() == rows["age"].tolist()
    assert frame["sex"].tolist() == rows["sex"].tolist()


def test_empty_malformed_and_missing_logs_are_clear_errors(tmp_path):
    with pytest.raises(requests.RequestLogError, match="no requests-\\*.tfrecord files"):
        requests.read(str(tmp_path))
    (tmp_path / "requests-empty.tfrecord").write_bytes(b"")
    with pytest.raises(requests.RequestLogError, match="hold no requests"):
        requests.read(str(tmp_path))
    bad = tmp_path / "requests-bad.tfrecord"
    bad.write_bytes(b"this is not a TFRecord file at all")
    with pytest.raises(requests.RequestLogError, match="requests-bad.tfrecord: not a TFRecord"):
        requests.read(str(bad))
    with pytest.raises(requests.RequestLogError, match="no such file or folder"):
        requests.read(str(tmp_path / "nope"))
    good = tmp_path / "requests-good.tfrecord"
    write_log(good, eval_frame().head(100))
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "requests-cut.tfrecord").write_bytes(good.read_bytes()[:-7])
    with pytest.raises(requests.RequestLogError,
                       match="requests-cut.tfrecord: truncated or corrupted after record 1"):
        requests.read(str(cut))


def test_a_label_queue_filled_in_part_way_gives_the_filled_rows(tmp_path):
    path = tmp_path / "queue.csv"
    path.write_text("request_id,label,age\na,1,30\nb,,41\nc,0,50\n")
    assert monitor.read_labels(str(path)) == {"a": 1, "c": 0}


@pytest.mark.parametrize("text,message", [
    ("id,y\nx,1\n", "expected a CSV with the header 'request_id,label'"),
    ("request_id,label\nx,2\n", "labels.csv:2: label '2' is not 0 or 1"),
    ("request_id,label\n", "no labels"),
    ("request_id,label\na,\nb, \n", "no labels"),  # a label queue not filled in yet
])
def test_bad_label_files_name_the_file_and_row(tmp_path, text, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(FairwayError, match=message):
        monitor.read_labels(str(path))


def test_classify_logs_with_context_carry_the_context_features(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    inp = log.classify_log.request.input.example_list_with_context
    inp.context.features.feature["sex"].bytes_list.value.append(b"Female")
    for age in (30, 40):
        ex = inp.examples.add()
        ex.features.feature["age"].int64_list.value.append(age)
    with tf.io.TFRecordWriter(str(tmp_path / "requests-c.tfrecord")) as w:
        w.write(log.SerializeToString())
    frame = requests.read(str(tmp_path))
    assert frame["sex"].tolist() == ["Female", "Female"]
    assert frame["age"].tolist() == [30, 40]


def test_nan_and_empty_inputs_are_missing_values(tmp_path):
    log = rest.predict_log({"x": np.array([1.5, np.nan]), "s": np.array([b"a", b""], object)},
                           {"probability": np.zeros(2, np.float32)}, "serving_default")()
    with tf.io.TFRecordWriter(str(tmp_path / "requests-n.tfrecord")) as w:
        w.write(log.SerializeToString())
    frame = requests.read(str(tmp_path))
    assert frame["x"].isna().tolist() == [False, True]
    assert frame["s"].isna().tolist() == [False, True]


def test_logs_without_time_take_the_time_in_the_file_name(tmp_path):
    write_log(tmp_path / "requests-20261130T140000Z-1.tfrecord", eval_frame().head(10))
    frame = requests.read(str(tmp_path))
    assert set(frame["_time"]) == {windows.parse_time("2026-11-30T14:00:00Z", "t")}


def _timed(times) -> pd.DataFrame:
    return pd.DataFrame({"_time": times, "_request_id": [f"r{i}" for i in range(len(times))]})


def test_windows_by_time_align_in_utc_and_wait_until_closed():
    t0 = windows.parse_time("2026-11-30T10:00:00Z", "t")
    frame = _timed([t0 + 5, t0 + 1800, t0 + 3599, t0 + 3600, t0 + 7300])
    cut = windows.split(frame, windows.parse("1h"), now=t0 + 7300, grace=60)
    assert [w.key for w in cut] == ["2026-11-30T10:00:00Z/1h", "2026-11-30T11:00:00Z/1h",
                                    "2026-11-30T12:00:00Z/1h"]
    assert [len(w.frame) for w in cut] == [3, 1, 1]
    assert [w.closed for w in cut] == [True, True, False]  # 12:00-13:00 is still open
    # 11:00-12:00 ended 100 s ago; with a grace of 120 s it still waits for late records.
    late = windows.split(frame, windows.parse("1h"), now=t0 + 7300, grace=120)
    assert [w.closed for w in late] == [True, False, False]
    # --since/--until select whole windows: a window they cut is left out, never scored
    # partially under the full window's key; --until never closes an open window.
    ranged = windows.split(frame, windows.parse("1h"), since=t0 + 1800,
                           until=windows.parse_time("2030-01-01", "t"), now=t0 + 7300)
    assert [(w.key[11:16], w.closed) for w in ranged] == [("11:00", True), ("12:00", False)]


def test_windows_by_count_are_found_again_and_continue_after_the_last_scored():
    frame = _timed(list(range(25)))
    cut = windows.split(frame, windows.parse("10"))
    assert [len(w.frame) for w in cut] == [10, 10, 5] and [w.closed for w in cut] == \
        [True, True, False]
    assert cut[0].key == "10 from r0" and cut[1].key == "10 from r10"
    scored = [windows.Scored(w.key, w.frame["_request_id"].iloc[0],
                             w.frame["_request_id"].iloc[-1], w.end) for w in cut[:2]]
    again = windows.split(frame, windows.parse("10"), scored=scored)
    assert [w.key for w in again] == ["10 from r0", "10 from r10", "10 from r20"]
    assert again[1].frame["_request_id"].tolist() == [f"r{i}" for i in range(10, 20)]
    # The logs of r0-r12 are gone: the second window cannot be found again, and the count
    # continues after its last request instead of shifting every window.
    gone = windows.split(frame.iloc[13:], windows.parse("10"), scored=scored)
    assert [w.key for w in gone] == ["10 from r20"]
    assert gone[0].frame["_request_id"].iloc[0] == "r20"


@pytest.mark.parametrize("text", ["", "0", "1w", "h", "-5", "1.5h"])
def test_bad_window_sizes_are_clear_errors(text):
    with pytest.raises(FairwayError, match="--window"):
        windows.parse(text)


# -- the calculator's decisions on census windows ------------------------------------------------

@pytest.fixture(scope="module")
def census_calculator():
    """A reference from the census CSVs, with a small scikit-learn model's scores (the
    calculator needs scores and labels, not a TF model); the stream is eval rows outside the
    pool."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    home = config.data_home() / "census"
    train = pd.read_csv(home / "train" / "adult.data.csv", keep_default_na=False)
    ev = pd.read_csv(home / "eval" / "adult.test.csv", keep_default_na=False)
    features = [c for c in train.columns if c != RAW.label]
    numeric = {f: train[f].dtype.kind in "if" for f in features}

    def encode(df):
        x = df[features].copy()
        for f in features:
            if not numeric[f]:
                x[f] = pd.Categorical(x[f], categories=sorted(train[f].unique())).codes
        return x.to_numpy(float)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="openmp"):  # see monitoring/domain.py
        model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(
            encode(train), train[RAW.label])
    for df in (train, ev):
        df["_prediction"] = model.predict_proba(encode(df))[:, 1]
        df["_label"] = df[RAW.label].astype(float)
    order = np.random.default_rng(0).permutation(len(ev))
    pool, stream = ev.iloc[order[:8000]], ev.iloc[order[8000:]].reset_index(drop=True)
    ref = Reference(train=train[features], pool=pool.reset_index(drop=True), numeric=numeric,
                    train_scores=train["_prediction"].to_numpy(),
                    train_labels=train["_label"].to_numpy(), sensitive=RAW.sensitive,
                    groups=tuple(RAW.groups))
    return Calculator(ref, k=3.0, bootstrap=40), stream, model, encode


def _alerting(rows, kinds=None):
    return {(r["kind"], r["name"]) for r in rows if r["alert"] and
            (kinds is None or r["kind"] in kinds)}


@pytest.mark.parametrize("size", [200, 5000])
def test_clean_windows_raise_no_alert_and_injected_drift_is_detected(census_calculator, size):
    calc, stream, model, encode = census_calculator
    clean = stream.sample(size, random_state=size)
    rows = calc.calculate(clean, "clean")
    assert _alerting(rows) == set()
    kinds = {r["kind"] for r in rows}
    assert {"feature", "quality", "prediction", "label", "performance", "estimate",
            "multivariate", "dataset"} <= kinds
    assert {r["method"] for r in rows if r["name"] == "age"} == {
        "ks", "wasserstein", "psi", "kl", "jensen_shannon", "missing_rate"}
    assert {r["method"] for r in rows if r["kind"] == "feature" and r["name"] == "sex"} == {
        "chi2", "jensen_shannon", "psi", "kl", "linf"}
    shifted = clean.copy()
    shifted["age"] = shifted["age"] + 12
    shifted.loc[shifted.sample(frac=0.4, random_state=1).index, "occupation"] = None
    shifted["_prediction"] = model.predict_proba(encode(shifted.fillna("")))[:, 1]
    rows = calc.calculate(shifted, "shifted")
    found = _alerting(rows)
    assert {("feature", "age"), ("quality", "occupation"), ("multivariate",
                                                            "domain_classifier")} <= found
    domain = next(r for r in rows if r["kind"] == "multivariate")
    assert domain["detail"][0]["feature"] in ("age", "occupation")


def test_concept_drift_shows_in_realized_performance_not_in_input_drift(census_calculator):
    calc, stream, _, _ = census_calculator
    window = stream.sample(1000, random_state=3).copy()
    # Labels flip for one group; the inputs (and so the scores) do not change.
    flip = window["sex"] == "Male"
    window.loc[flip, "_label"] = 1 - window.loc[flip, "_label"]
    rows = calc.calculate(window, "concept")
    found = _alerting(rows)
    assert ("performance", "auc") in found
    assert not _alerting(rows, {"feature", "quality", "prediction", "multivariate"})
    est = next(r for r in rows if r["kind"] == "estimate" and r["name"] == "auc")
    assert est["realized"] < est["lower"] <= est["value"] <= est["upper"]


def test_the_label_free_estimate_is_close_to_realized_on_clean_windows(census_calculator):
    calc, stream, _, _ = census_calculator
    errors = []
    for seed in range(5):
        rows = calc.calculate(stream.sample(1000, random_state=seed), str(seed))
        est = next(r for r in rows if r["kind"] == "estimate" and r["name"] == "auc")
        errors.append(abs(est["value"] - est["realized"]))
        assert est["lower"] <= est["realized"] <= est["upper"]
    assert np.mean(errors) < 0.02


def test_label_files_with_unknown_ids_are_clear_errors(tmp_path):
    write_log(tmp_path / "requests-a.tfrecord", eval_frame().head(5))
    frame = requests.read(str(tmp_path))
    with pytest.raises(monitor.LabelError, match="2 of 3 request ids are in no request log, "
                                                 "e.g. 'nope-1', 'nope-2'"):
        monitor.join_labels(frame, {frame["_request_id"][0]: 1, "nope-1": 0, "nope-2": 1},
                            "labels.csv")
    joined = monitor.join_labels(frame, {frame["_request_id"][1]: 1}, "labels.csv")
    assert joined["_label"].isna().tolist() == [True, False, True, True, True]


def test_schema_anomalies_of_a_window_name_the_value():
    import tensorflow_data_validation as tfdv

    schema = tfdv.load_schema_text(str(config.REPO_ROOT / "schemas" / "census" /
                                       "schema.pbtxt"))
    window = eval_frame().head(300).copy()
    assert anomalies.find(window, schema) == {}
    window.loc[window.index[:30], "workclass"] = "Gig-economy"
    assert "Gig-economy" in anomalies.find(window, schema)["workclass"]


def test_the_history_appends_runs_and_survives_a_restart(tmp_path):
    from ml_metadata.metadata_store import metadata_store

    from pipeline import metadata

    cfg = config.preset("census", output_dir=tmp_path)
    metadata_store.MetadataStore(metadata.connection_config(cfg))  # an empty store
    rows = [{"window": "w1", "kind": "feature", "alert": False}]
    h = history.History(cfg, "census", tmp_path / "h")
    h.record(rows, {"requests": "logs", "window": "1h", "k": 3.0})
    h.record(rows + [{"window": "w2", "kind": "feature", "alert": True}],
             {"requests": "logs", "window": "1h", "k": 3.0})
    again = history.History(cfg, "census", tmp_path / "h")
    assert [r["window"] for r in again.rows()] == ["w1", "w1", "w2"]
    store = metadata.store(cfg)
    runs = store.get_executions_by_type(history.EXECUTION)
    assert len(runs) == 2 and runs[1].properties["alerts"].double_value == 1


def test_attribution_drift_is_shown_and_a_feature_that_matters_little_is_marked():
    rng = np.random.default_rng(0)

    def rows(n, shift=0.0, gain=1.0):
        x1, x2 = rng.normal(size=n), rng.normal(size=n) + shift
        return pd.DataFrame({"x1": x1, "x2": x2, "_prediction": 1 / (1 + np.exp(-x1)),
                             "_attr:x1": gain * x1, "_attr:x2": 0.01 * x2})

    pool = rows(4000)
    pool["_label"] = (rng.random(4000) < pool["_prediction"]).astype(float)
    ref = Reference(train=rows(4000)[["x1", "x2"]], pool=pool,
                    numeric={"x1": True, "x2": True})
    calc = Calculator(ref, bootstrap=40)
    assert calc.share["x1"] > 0.95
    out = calc.calculate(rows(1000, shift=2.0, gain=2.0), "w")
    drift = {r["name"]: r for r in out if r["kind"] == "feature" and r["primary"]}
    assert drift["x2"]["alert"] and "matters little" in drift["x2"]["detail"]
    attr = {r["name"]: r for r in out if r["kind"] == "attribution" and r["primary"]}
    assert attr["x1"]["value"] > attr["x1"]["threshold"]  # |attribution| doubled ...
    assert not attr["x1"]["alert"]  # ... shown next to input drift, not an alert of its own
    assert {r["method"] for r in out if r["kind"] == "attribution"} == {"mean_abs_change",
                                                                       "mean_abs"}


def test_explain_logs_give_their_probability_as_the_score(tmp_path):
    log = rest.predict_log({"x": np.array([1.5, 2.0])},
                           {"probability": np.array([0.25, 0.75], np.float32),
                            "logit": np.zeros(2, np.float32),
                            "attribution_x": np.ones(2, np.float32)}, "explain")()
    with tf.io.TFRecordWriter(str(tmp_path / "requests-e.tfrecord")) as w:
        w.write(log.SerializeToString())
    assert requests.read(str(tmp_path))["_prediction"].tolist() == [0.25, 0.75]


def test_partly_labelled_windows_are_judged_at_their_labelled_count(census_calculator):
    calc, stream, _, _ = census_calculator
    window = stream.sample(1000, random_state=11).copy()
    few = window.copy()
    few.loc[few.index[40:], "_label"] = np.nan  # 40 labels: too few to judge yet
    rows = calc.calculate(few, "few")
    assert not [r for r in rows if r["kind"] in ("label", "performance")]
    assert {r["labelled"] for r in rows} == {0}
    part = window.copy()
    part.loc[part.index[300:], "_label"] = np.nan
    rows = calc.calculate(part, "part")
    auc = next(r for r in rows if r["kind"] == "performance" and r["name"] == "auc")
    assert auc["labelled"] == 300 and not _alerting(rows)
    # The bound is the spread of 300 rows, wider than the window's 1000.
    full = next(r for r in calc.calculate(window, "full")
                if r["kind"] == "performance" and r["name"] == "auc")
    assert auc["threshold"] < full["threshold"]


def test_whole_number_floats_of_a_float_column_are_no_anomaly():
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    f = schema.feature.add(name="fare", type=schema_pb2.FLOAT)
    f.presence.min_fraction = 1.0
    frame = pd.DataFrame({"fare": np.array([3, 5, 8], np.int64)})  # as read() keeps them
    assert anomalies.find(frame, schema) == {}


def test_the_latest_window_links_its_statistics_page(tmp_path, monkeypatch):
    """monitor.stats_link: the latest window scored in this run gets stats/<window>.html beside
    the page (monitor.stats_page: the statistics view against the reference run's training
    statistics), a run that scores nothing new keeps the link, a page that cannot be made is
    a warning and no link."""
    cfg = config.preset("census", output_dir=tmp_path)
    latest = windows.Window("400 from a/b", 0, 1, pd.DataFrame({"age": [30]}), True)
    rows = [{"window": "older", "kind": "feature", "baseline_run": "run-0"},
            {"window": latest.key, "kind": "feature", "baseline_run": "run-1"}]
    monkeypatch.setattr(monitor, "stats_page", lambda cfg, w, schema, run: f"<p>{w.key} {run}")
    said: list[str] = []
    [(text, link)] = monitor.stats_link(cfg, tmp_path, rows, {latest.key: (latest, None, "run-1")},
                                        said.append)
    assert link == "stats/400_from_a_b.html" and "(400 from a/b)" in text and "run-1" in text
    assert (tmp_path / link).read_text() == "<p>400 from a/b run-1"
    assert monitor.stats_link(cfg, tmp_path, rows, {}, said.append) == [(text, link)]

    def broken(*_):
        raise FairwayError("no StatisticsGen output")

    monkeypatch.setattr(monitor, "stats_page", broken)
    assert monitor.stats_link(cfg, tmp_path / "other", rows,
                              {latest.key: (latest, None, "run-1")}, said.append) == []
    assert said == ["warning: no statistics page for window 400 from a/b: FairwayError: "
                    "no StatisticsGen output"]
