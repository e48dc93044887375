"""The feedback loop (release.feedback): labelled request logs (production and shadow) become a
new span in the dataset's raw CSV form, and the label queue picks uncertain requests with a
quota per sensitive group. Logs are written as `fairway serve` writes them; no model needed."""
import argparse
import textwrap

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from data import csvfile
from pipeline import config
from pipeline.errors import FairwayError
from release import feedback
from runners import feedback_cmd
from serving import rest

CENSUS = config.preset("census")
TAXI = config.preset("taxi")


def valid_rows(cfg, n: int, seed: int = 0) -> pd.DataFrame:
    """n rows of the config's features that fit its schema (any dataset)."""
    rng = np.random.default_rng(seed)
    schema = feedback.load_schema(cfg)
    cols = {}
    for f in schema.feature:
        if f.name not in cfg.dataset.features:
            continue
        kind = f.WhichOneof("domain_info")
        domain = feedback.tfdv.get_domain(schema, f.name) if kind else None
        if isinstance(domain, schema_pb2.StringDomain):
            cols[f.name] = rng.choice(list(domain.value), n)
        elif f.type == schema_pb2.BYTES:
            cols[f.name] = np.array([f"v{i}" for i in rng.integers(0, 5, n)], dtype=object)
        else:
            lo = domain.min if domain is not None and domain.HasField("min") else 0
            hi = domain.max if domain is not None and domain.HasField("max") else 100
            if f.type == schema_pb2.INT:
                cols[f.name] = rng.integers(int(lo), int(hi) + 1, n)
            else:
                cols[f.name] = np.round(rng.uniform(lo, hi, n), 3)
    return pd.DataFrame(cols)


def write_log(path, frame: pd.DataFrame, ids, scores, version: int = 7, t0: int = 1_800_000_000):
    """One REST :predict request per row, logged as `fairway serve` does (request id in
    request_origin, arrival time in timestamp_secs)."""
    with tf.io.TFRecordWriter(str(path)) as w:
        for i, rid in enumerate(ids):
            row = frame.iloc[[i]]
            inputs = {}
            for c in row.columns:
                v = row[c].to_numpy()
                if v.dtype == object:
                    inputs[c] = np.array(["" if pd.isna(x) else str(x) for x in v], object) \
                        .astype(bytes).astype(object)
                elif v.dtype.kind == "f":
                    inputs[c] = v.astype(np.float64)
                else:
                    inputs[c] = v.astype(np.int64)
            log = rest.predict_log(inputs, {"probability": np.array([scores[i]], np.float32)},
                                   "serving_default")()
            log.log_metadata.model_spec.version.value = version
            log.log_metadata.request_origin = rid
            log.log_metadata.timestamp_secs = t0 + i
            w.write(log.SerializeToString())


def write_labels(path, labels: dict) -> str:
    pd.DataFrame({"request_id": list(labels), "label": list(labels.values())}).to_csv(
        path, index=False)
    return str(path)


def quiet(_):
    pass


def census_logs(tmp_path, n=40):
    """n valid census requests r0..; r0..r9 copied to the shadow (other scores)."""
    rows = valid_rows(CENSUS, n)
    ids = [f"r{i}" for i in range(n)]
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "requests-20270101T000000Z-1.tfrecord", rows, ids, [0.25] * n, version=7)
    write_log(logs / "shadow-20270101T000000Z-1.tfrecord", rows.head(10), ids[:10],
              [0.9] * 10, version=8)
    return logs, rows, ids


def test_shadow_copies_are_kept_once_as_production_answered(tmp_path):
    logs, rows, ids = census_logs(tmp_path, n=20)
    # Five requests reached only the shadow (production sampled them out of its log).
    write_log(logs / "shadow-20270101T010000Z-1.tfrecord", valid_rows(CENSUS, 5, seed=3),
              [f"s{i}" for i in range(5)], [0.6] * 5, version=8)
    (logs / "requests-20270101T020000Z-1.tfrecord").write_bytes(b"")  # opened, never written
    lines = []
    frame = feedback.read_traffic(str(logs), lines.append)
    assert len(frame) == 25 and frame["_request_id"].is_unique
    by_id = frame.set_index("_request_id")
    assert by_id.loc["r3", "_prediction"] == pytest.approx(0.25)  # production's answer
    assert by_id.loc["r3", "_version"] == 7 and by_id.loc["r3", "_source"] == "requests"
    assert by_id.loc["s2", "_source"] == "shadow"
    assert by_id.loc["r3", "age"] == rows.loc[3, "age"]
    assert "read 35 rows" in lines[0] and "10 duplicate rows removed" in lines[1]


def test_census_span_drops_rows_that_break_the_schema_and_round_trips(tmp_path):
    rows = valid_rows(CENSUS, 60)
    rows["age"] = rows["age"].astype(float)
    rows.loc[0:2, "workclass"] = "Robot"  # not in the domain
    rows.loc[3:4, "age"] = np.nan  # required
    rows.loc[5, "age"] = 130  # int_domain max 100
    rows.loc[6, "workclass"] = ""  # optional (presence 0.9): kept, an empty cell
    ids = [f"q{i}" for i in range(60)]
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "requests-a.tfrecord", rows, ids, np.linspace(0, 1, 60))
    write_log(logs / "shadow-a.tfrecord", rows.head(30), ids[:30], [0.5] * 30)
    labels = write_labels(tmp_path / "labels.csv", {r: i % 2 for i, r in enumerate(ids[:50])})
    lines = []
    counts = feedback.write_span(CENSUS, str(logs), labels, tmp_path / "span", log=lines.append)
    text = "\n".join(lines)
    assert counts["read"] == 90 and counts["requests"] == 60 and counts["labelled"] == 50
    assert counts["dropped"] == {"workclass value 'Robot' not in the schema's domain": 3,
                                 "age missing": 2,
                                 "age outside the schema's range [16, 100]": 1}
    assert "dropped 6 rows: workclass value 'Robot' not in the schema's domain (3), " \
           "age missing (2), age outside the schema's range [16, 100] (1)" in text
    assert counts["train"] + counts["eval"] == 44 and counts["eval"] > 0

    # What `fairway run --data` reads: the pipeline's own CSV reader, the dataset's columns.
    scan = csvfile.scan(tmp_path / "span")
    assert set(scan.splits) == {"train", "eval"}
    expected = tuple(feedback.columns(CENSUS, feedback.load_schema(CENSUS)))
    assert scan.headers["train"] == scan.headers["eval"] == expected
    assert set(expected) == set(CENSUS.dataset.features) | {"income"}
    assert scan.rows == {"train": counts["train"], "eval": counts["eval"]}
    back = pd.concat([pd.read_csv(tmp_path / "span" / s / "data.csv", dtype=str,
                                  keep_default_na=False) for s in ("train", "eval")])
    assert sorted(back["income"].unique()) == ["0", "1"]
    assert not back["age"].str.contains(r"\.").any()  # INT stays whole: "39", never "39.0"
    by_age = {int(a) for a in back["age"]}
    assert by_age <= set(range(16, 101))
    assert (back["workclass"] == "").sum() == 1  # the optional value, missing
    assert not (back["workclass"] == "Robot").any()


def test_split_is_a_deterministic_hash_of_the_request_id(tmp_path):
    ids = pd.Series([f"id-{i}" for i in range(2000)])
    a = feedback.split_of(ids, 0.2)
    b = feedback.split_of(ids.iloc[::-1], 0.2).sort_index()
    assert (a == b).all()  # order and neighbours do not matter
    assert (feedback.split_of(ids.head(10), 0.2) == a.head(10)).all()
    assert 0.15 < (a == "eval").mean() < 0.25

    logs, rows, ids = census_logs(tmp_path, n=40)
    labels = write_labels(tmp_path / "labels.csv", {r: 1 for r in ids})
    for dest in ("one", "two"):
        feedback.write_span(CENSUS, str(logs), labels, tmp_path / dest, log=quiet)
    for split in ("train", "eval"):
        assert (tmp_path / "one" / split / "data.csv").read_bytes() == \
               (tmp_path / "two" / split / "data.csv").read_bytes()


def test_taxi_span_keeps_taxi_columns_and_floats(tmp_path):
    rows = valid_rows(TAXI, 30, seed=1)
    rows.loc[0, "trip_start_hour"] = 24  # int_domain [0, 23]
    ids = [f"t{i}" for i in range(30)]
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "requests-a.tfrecord", rows, ids, [0.3] * 30)
    labels = write_labels(tmp_path / "labels.csv", {r: i % 2 for i, r in enumerate(ids)})
    counts = feedback.write_span(TAXI, str(logs), labels, tmp_path / "span",
                                 eval_fraction=0.3, log=quiet)
    assert counts["dropped"] == {"trip_start_hour outside the schema's range [0, 23]": 1}
    header, body = csvfile.read_rows([tmp_path / "span" / "train" / "data.csv"])
    assert set(header) == set(TAXI.dataset.features) | {"big_tipper"}
    first = dict(zip(header, next(body)[2]))
    assert "." in first["fare"] and "." not in first["trip_start_hour"]


TINY_SCHEMA = """
feature { name: "x" type: FLOAT float_domain { min: 0 max: 10 }
          presence { min_fraction: 1.0 min_count: 1 } }
feature { name: "n" type: INT presence { min_fraction: 0.5 min_count: 1 } }
feature { name: "color" type: BYTES domain: "color" presence { min_fraction: 1.0 min_count: 1 } }
feature { name: "note" type: BYTES presence { min_fraction: 0.0 } }
feature { name: "churn" type: INT int_domain { min: 0 max: 1 } not_in_environment: "SERVING" }
string_domain { name: "color" value: "red" value: "blue" }
default_environment: "TRAINING"
default_environment: "SERVING"
"""


def tiny_config(tmp_path):
    """A config as `fairway init` writes one, with a label_map and an ignored column."""
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "schema.pbtxt").write_text(TINY_SCHEMA)
    (tmp_path / "tiny" / "tiny.toml").write_text(textwrap.dedent("""
        [dataset]
        name = "tiny"
        source = "csv"
        csv_dir = "data.csv"
        schema = "schema.pbtxt"
        numeric = ["x", "n"]
        categorical = ["color"]
        label = "churn"
        label_map = {"Yes" = 1, "No" = 0}
        sensitive = "color"
        [evaluation]
        decision_threshold = 0.3
        """))
    (tmp_path / "tiny" / "data.csv").write_text("x,n,color,note,churn\n1.5,2,red,a,Yes\n")
    return config.load(tmp_path / "tiny" / "tiny.toml")


def test_a_label_map_writes_the_raw_label_and_optional_values_stay_empty(tmp_path):
    cfg = tiny_config(tmp_path)
    rows = pd.DataFrame({"x": [1.0, 2.5, 11.0, 3.0, 4.0, 5.0],
                         "n": [1.0, np.nan, 3.0, 4.0, 5.0, 6.0],
                         "color": ["red", "blue", "red", "green", "blue", "red"]})
    ids = [f"k{i}" for i in range(6)]
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "requests-a.tfrecord", rows, ids, [0.1] * 6)
    labels = write_labels(tmp_path / "labels.csv", dict(zip(ids, [1, 0, 1, 1, 0, 1])))
    counts = feedback.write_span(cfg, str(logs), labels, tmp_path / "span", eval_fraction=0.5,
                                 log=quiet)
    assert counts["dropped"] == {"x outside the schema's range [0, 10]": 1,
                                 "color value 'green' not in the schema's domain": 1}
    back = pd.concat([pd.read_csv(tmp_path / "span" / s / "data.csv", dtype=str,
                                  keep_default_na=False) for s in ("train", "eval")])
    assert list(back.columns) == ["x", "n", "color", "churn"]  # the ignored 'note' is no feature
    got = dict(zip(back["x"], zip(back["n"], back["churn"])))
    assert got == {"1.0": ("1", "Yes"), "2.5": ("", "No"), "4.0": ("5", "No"),
                   "5.0": ("6", "Yes")}


def test_clear_errors(tmp_path):
    logs, rows, ids = census_logs(tmp_path, n=20)
    good = write_labels(tmp_path / "labels.csv", {r: 1 for r in ids})
    with pytest.raises(FairwayError, match=r"labels-x.csv: 1 of 2 request ids are in no request "
                                           r"log, e.g. 'nope'"):
        feedback.write_span(CENSUS, str(logs),
                            write_labels(tmp_path / "labels-x.csv", {"r1": 1, "nope": 0}),
                            tmp_path / "span", log=quiet)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FairwayError, match=r"empty: no requests-\*.tfrecord or shadow-\*"):
        feedback.write_span(CENSUS, str(tmp_path / "empty"), good, tmp_path / "s1", log=quiet)
    (tmp_path / "empty" / "requests-a.tfrecord").write_bytes(b"")
    with pytest.raises(FairwayError, match="hold no requests"):
        feedback.write_span(CENSUS, str(tmp_path / "empty"), good, tmp_path / "s1", log=quiet)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    with pytest.raises(FairwayError, match="full: already exists and is not empty"):
        feedback.write_span(CENSUS, str(logs), good, tmp_path / "full", log=quiet)
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me"
    # A queue filled in part way: the empty label is a request not labelled yet, not an error.
    (tmp_path / "queue.csv").write_text("request_id,label,age\nr1,1,30\nr2,,40\n")
    with pytest.raises(FairwayError, match=r"the eval split would be empty \(1 labelled rows"):
        feedback.write_span(CENSUS, str(logs), str(tmp_path / "queue.csv"), tmp_path / "s2",
                            log=quiet)
    bad = rows.assign(workclass="Robot")
    (tmp_path / "bad").mkdir()
    write_log(tmp_path / "bad" / "requests-a.tfrecord", bad, ids, [0.5] * 20)
    with pytest.raises(FairwayError, match=r"labels.csv: none of the 20 labelled requests fits "
                                           r"the schema .*census/schema.pbtxt \(20 rows: "
                                           r"workclass value"):
        feedback.write_span(CENSUS, str(tmp_path / "bad"), good, tmp_path / "s3", log=quiet)
    one = write_labels(tmp_path / "one.csv", {"r1": 1})
    with pytest.raises(FairwayError, match=r"s4: the (train|eval) split would be empty"):
        feedback.write_span(CENSUS, str(logs), one, tmp_path / "s4", log=quiet)
    for dest in ("s1", "s2", "s3", "s4"):
        assert not (tmp_path / dest).exists()  # nothing written on an error


def test_quotas_reserve_k_per_group_or_a_fair_share():
    assert feedback.quotas({"a": 100, "b": 3}, k=5, n=50) == {"a": 5, "b": 3}
    assert feedback.quotas({"a": 100, "b": 1, "c": 100}, k=5, n=6) == {"b": 1, "a": 2, "c": 3}
    assert feedback.quotas({"a": 100, "b": 100}, k=0, n=6) == {"a": 0, "b": 0}


def test_label_queue_picks_the_most_uncertain_with_a_quota_per_group(tmp_path):
    n = 40
    rows = valid_rows(CENSUS, n)
    rows["sex"] = ["Female"] * 10 + ["Male"] * 30
    # Women's scores are far from the threshold (0.5), men's close: without a quota no woman
    # would be picked.
    scores = [0.05 + 0.001 * i for i in range(10)] + [0.5 + 0.01 * (i - 15) for i in range(30)]
    ids = [f"u{i}" for i in range(n)]
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "requests-a.tfrecord", rows, ids, scores)
    write_log(logs / "shadow-a.tfrecord", rows, ids, [0.5] * n)  # no duplicate in the queue
    labelled = write_labels(tmp_path / "labels.csv", {"u25": 1, "u24": 0})  # |p-0.5| 0, .01
    lines = []
    out = feedback.label_queue(CENSUS, str(logs), labelled, n=5, min_per_group=2,
                               out=tmp_path / "queue.csv", log=lines.append)
    queue = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(queue.columns) == ["request_id", "label"] + feedback.columns(
        CENSUS, feedback.load_schema(CENSUS))[:-1] + ["prediction"]
    assert (queue["label"] == "").all() and queue["request_id"].is_unique
    # The two women closest to 0.5 (u9, u8), then the three most uncertain men not yet
    # labelled (|p - 0.5| 0.01, 0.02, 0.02).
    assert set(queue["request_id"]) == {"u9", "u8", "u26", "u23", "u27"}
    assert "Female 2 (quota 2 of 10)" in lines[-2] and "Male 3 (quota 2 of 28)" in lines[-2]
    # A filled-in queue feeds back as labels, and those requests leave the next queue.
    queue["label"] = "1"
    queue.to_csv(tmp_path / "filled.csv", index=False)
    again = feedback.label_queue(CENSUS, str(logs), str(tmp_path / "filled.csv"), n=5,
                                 min_per_group=2, out=tmp_path / "q2.csv", log=quiet)
    assert not set(pd.read_csv(again)["request_id"]) & set(queue["request_id"])
    with pytest.raises(FairwayError, match="queue.csv: already exists"):
        feedback.label_queue(CENSUS, str(logs), None, out=tmp_path / "queue.csv", log=quiet)


def test_label_queue_reads_the_configs_threshold_and_a_small_group_gives_its_share(tmp_path):
    cfg = tiny_config(tmp_path)  # decision_threshold 0.3, sensitive color
    rows = pd.DataFrame({"x": [1.0] * 8, "n": [1.0] * 8,
                         "color": ["blue"] + ["red"] * 7})
    scores = [0.9, 0.3, 0.33, 0.5, 0.6, 0.7, 0.8, 0.29]
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "requests-a.tfrecord", rows, [f"c{i}" for i in range(8)], scores)
    out = feedback.label_queue(cfg, str(logs), None, n=3, min_per_group=2,
                               out=tmp_path / "q.csv", log=quiet)
    queue = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert set(queue["request_id"]) == {"c0", "c1", "c7"}  # the only blue, then 0.3, 0.29
    assert list(queue.columns) == ["request_id", "label", "x", "n", "color", "prediction"]


def test_commands_parse_their_flags_and_print_counts(tmp_path, capfd):
    def add_config_args(p):
        p.add_argument("--config")
        p.add_argument("--dataset")

    top = argparse.ArgumentParser()
    sub = top.add_subparsers(dest="command")
    data = sub.add_parser("data")
    add_config_args(data)
    data.add_argument("--new-span")
    data.add_argument("--inject-drift", action="store_true")
    feedback_cmd.add_data_flags(data)
    feedback_cmd.add_label_queue_parser(sub, add_config_args)

    logs, rows, ids = census_logs(tmp_path, n=30)
    labels = write_labels(tmp_path / "labels.csv", {r: i % 2 for i, r in enumerate(ids)})
    cfg = config.preset("census", output_dir=tmp_path / "out")
    args = top.parse_args(["data", "--from-logs", str(logs), "--labels", labels,
                           "--new-span", str(tmp_path / "span"), "--eval-fraction", "0.3"])
    assert feedback_cmd.data_from_logs(cfg, args) == 0
    printed = capfd.readouterr().out
    assert "labelled: 30 of 30 requests" in printed
    assert f"--dataset census --data {tmp_path / 'span'}" in printed
    args = top.parse_args(["label-queue", "--logs", str(logs), "--labels", labels, "-n", "5"])
    with pytest.raises(FairwayError, match="no unlabelled request"):
        feedback_cmd.label_queue(cfg, args)
    with pytest.raises(FairwayError, match="expected --labels CSV"):
        feedback_cmd.data_from_logs(cfg, top.parse_args(
            ["data", "--from-logs", str(logs), "--new-span", str(tmp_path / "s")]))
    with pytest.raises(SystemExit):
        top.parse_args(["data", "--from-logs", "x", "--eval-fraction", "1.5"])
    assert "expected a number in (0, 1)" in capfd.readouterr().err


def test_rows_that_fit_one_by_one_but_not_together_are_a_warning(tmp_path):
    cfg = tiny_config(tmp_path)  # n: presence min_fraction 0.5
    rows = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "n": [1.0, np.nan, np.nan, np.nan],
                         "color": ["red", "blue", "red", "blue"]})
    ids = ["a", "b", "c", "d"]
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "requests-a.tfrecord", rows, ids, [0.1] * 4)
    lines = []
    feedback.write_span(cfg, str(logs), write_labels(tmp_path / "l.csv", dict.fromkeys(ids, 1)),
                        tmp_path / "span", eval_fraction=0.5, log=lines.append)
    assert any(line.startswith("warning: the span as a whole breaks the schema at feature 'n'")
               for line in lines), lines
