"""`fairway schema propose | accept` on a tiny dataset: TFDV statistics of data frames against a
small curated schema, no pipeline run (tests/test_e2e.py runs the flow on a refused span)."""
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from ml_metadata.metadata_store import metadata_store

from data import schema_evolution as se
from data import spans
from data.acquire import DataError
from pipeline import config, metadata
from pipeline.config import DriftInjection
from runners import cli, schema_cmd

SCHEMA = """\
# A tiny curated schema: its comments survive every version.
feature {
  name: "age"
  type: INT
  int_domain {
    min: 18
    max: 90
  }
  presence {
    min_fraction: 1.0
    min_count: 1
  }
}
# city: the domain grows as the data does
feature {
  name: "city"
  type: BYTES
  domain: "city"
  presence {
    min_fraction: 0.9
    min_count: 1
  }
}
feature {
  name: "label"
  type: INT
  int_domain {
    min: 0
    max: 1
  }
  presence {
    min_fraction: 1.0
    min_count: 1
  }
  not_in_environment: "SERVING"
}
string_domain {
  name: "city"
  value: "Oslo"
  value: "Paris"
}
default_environment: "TRAINING"
default_environment: "SERVING"
"""
TOML = """\
[dataset]
name = "tiny"
numeric = ["age"]
categorical = ["city"]
label = "label"
csv_dir = "data.csv"
schema = "schema.pbtxt"
"""


@pytest.fixture
def tiny(tmp_path):
    """A config whose curated schema is SCHEMA, with an (empty) metadata store."""
    (tmp_path / "schema.pbtxt").write_text(SCHEMA)
    (tmp_path / "tiny.toml").write_text(TOML)
    cfg = config.load(tmp_path / "tiny.toml", output_dir=tmp_path / "out")
    cfg.output_dir.mkdir()
    metadata_store.MetadataStore(metadata.connection_config(cfg))
    return cfg


def rows(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"age": rng.integers(18, 91, n),
                         "city": rng.choice(["Oslo", "Paris"], n).astype(object),
                         "label": rng.integers(0, 2, n)})


def from_rows(frame: pd.DataFrame, notes=()) -> se.Evidence:
    return se.Evidence("run test", {"train": tfdv.generate_statistics_from_dataframe(frame)},
                       "TRAINING", tuple(notes))


def changed_lines(a: str, b: str) -> list[str]:
    import difflib

    return [line for line in difflib.ndiff(a.splitlines(), b.splitlines())
            if line[:1] in "+-"]


def accept_argv(cfg, *extra: str) -> list[str]:
    return ["schema", "accept", "--config", str(cfg.dataset.schema_file.parent / "tiny.toml"),
            "--output", str(cfg.output_dir), *extra]


def test_a_new_category_proposes_exactly_that_domain_extension(tiny):
    frame = rows()
    frame.loc[:9, "city"] = "Lima"  # 10 of 200 rows
    proposal = se.write_proposal(tiny, from_rows(frame), today="2026-12-01")
    assert [str(c) for c in proposal.changes] == [
        "feature 'city': domain extended by 'Lima' (seen in 5.0 % of train rows of run test)"]
    assert not proposal.changes[0].needs_force and proposal.notes == []
    p = proposal.paths
    assert p.proposed.name == "schema.proposed.pbtxt" and p.markdown.name == "schema.proposed.md"
    assert tiny.dataset.schema_file.read_text() == SCHEMA  # the curated one is untouched
    # The proposal keeps the file as written: its diff is the new value and Fairway's line.
    assert changed_lines(SCHEMA, p.proposed.read_text()) == [
        "+ # fairway schema: proposed on 2026-12-01 from run test (base "
        f"{se._digest(SCHEMA)}); review schema.proposed.md, then `fairway schema accept`",
        '+   value: "Lima"']
    md = p.markdown.read_text()
    assert f"- {proposal.changes[0]}\n" in md and '\n+  value: "Lima"\n' in md
    assert "Not fixed by a schema change" not in md


def test_missing_values_relax_presence_and_out_of_range_numbers_widen_the_range(tiny):
    frame = rows()
    frame.loc[:59, "city"] = None  # 30 % missing; the schema asks for 90 % present
    frame.loc[:4, "age"] = 95
    changes = se.write_proposal(tiny, from_rows(frame)).changes
    assert [(c.feature, c.kind, c.detail) for c in changes] == [
        ("age", se.RANGE_WIDENED, "max 90 → 95"),
        ("city", se.PRESENCE_RELAXED, "min_fraction 0.9 → 0.7")]
    assert changes[0].evidence == "values from 18 to 95 in train rows of run test"
    assert changes[1].evidence == "present in 70.0 % of train rows of run test"
    assert not any(c.needs_force for c in changes)


def test_clean_data_proposes_nothing_and_drift_is_named_as_not_fixed(tiny):
    drift = "split 'train', feature 'age': drift (JENSEN_SHANNON_DIVERGENCE) 0.3 > threshold 0.1"
    proposal = se.write_proposal(tiny, from_rows(rows(), [drift]))
    assert not proposal.written and proposal.changes == [] and proposal.notes == [drift]
    assert not proposal.paths.proposed.exists() and not proposal.paths.markdown.exists()
    with pytest.raises(se.SchemaEvolutionError, match="no proposal; make one"):
        se.accept(tiny, by="alice")


def test_a_label_of_another_type_or_a_missing_feature_needs_force(tiny):
    frame = rows()
    frame["label"] = frame["label"].map({0: "no", 1: "yes"})
    changes = se.write_proposal(tiny, from_rows(frame.drop(columns=["age"]))).changes
    # TFDV's fix for a column of the wrong type or a missing one: stop validating it.
    assert [(c.feature, c.kind, c.label, c.needs_force) for c in changes] == [
        ("age", se.FEATURE_REMOVED, False, True), ("label", se.FEATURE_REMOVED, True, True)]
    assert "(lifecycle_stage DEPRECATED: no longer validated)" in changes[1].detail
    assert "Column is completely missing" in changes[0].evidence
    md = se.paths(tiny).markdown.read_text()
    assert md.count("needs `--force` and `--reason`") == 2
    with pytest.raises(se.NeedsForce, match=r"feature 'label' \(the label\): feature removed"):
        se.accept(tiny, by="alice")
    assert tiny.dataset.schema_file.read_text() == SCHEMA


def test_a_proposal_that_changes_the_labels_type_is_refused_without_force(tiny, capsys):
    p = se.paths(tiny)
    # A proposal edited by hand: accept classifies the file as it is.
    label = SCHEMA.index('name: "label"')
    p.proposed.write_text(SCHEMA[:label] + SCHEMA[label:].replace("type: INT", "type: BYTES", 1))
    assert cli.main(accept_argv(tiny)) == 1
    err = capsys.readouterr().err
    assert "feature 'label' (the label): type changed INT → BYTES" in err and "--force" in err
    assert cli.main(accept_argv(tiny, "--force")) == 1
    assert "--force needs --reason" in capsys.readouterr().err
    assert tiny.dataset.schema_file.read_text() == SCHEMA and not p.versions.exists()
    assert cli.main(accept_argv(tiny, "--force", "--reason", "labels arrive as text",
                                "--by", "alice")) == 0
    assert "type: BYTES" in tiny.dataset.schema_file.read_text()
    [artifact] = metadata.store(tiny).get_artifacts_by_type(se.SCHEMA_TYPE)
    props = {k: getattr(v, v.WhichOneof("value")) for k, v in artifact.custom_properties.items()}
    assert (props["reason"], props["forced"], props["accepted_by"]) == (
        "labels arrive as text", 1, "alice")
    assert props["source"] == "a proposal written by hand"


def test_accept_keeps_every_version_and_records_each_in_mlmd(tiny):
    p = se.paths(tiny)
    frame = rows()
    frame.loc[:9, "city"] = "Lima"
    se.write_proposal(tiny, from_rows(frame))
    done = se.accept(tiny, by="alice")
    assert (done.version, done.saved_before) == (2, 1)
    assert p.version(1).read_text() == SCHEMA  # the curated schema before the first accept
    curated = tiny.dataset.schema_file.read_text()
    assert p.version(2).read_text() == curated and not p.proposed.exists() \
        and not p.markdown.exists()
    assert changed_lines(SCHEMA, curated) == [
        f"+ # fairway schema: version 2 (versions/schema.v2.pbtxt), accepted on "
        f"{se.datetime.date.today().isoformat()} by alice", '+   value: "Lima"']
    config.load(p.curated.parent / "tiny.toml")  # the config reads it as before
    assert "Lima" in tfdv.get_domain(se.parse(curated, p.curated), "city").value
    # The run after the refused one passes: the accepted schema takes the data as it is.
    assert not se.write_proposal(tiny, from_rows(frame)).written

    # A hand edit since the last accept is kept as a version of its own before the next.
    p.curated.write_text(curated.replace("# city: the domain", "# city (edited): the domain"))
    frame.loc[:4, "age"] = 95
    se.write_proposal(tiny, from_rows(frame))
    done = se.accept(tiny, by="bob", reason="older customers")
    assert (done.version, done.saved_before) == (4, 3)
    assert "(edited)" in p.version(3).read_text() and "(edited)" in p.curated.read_text()
    assert p.version(1).read_text() == SCHEMA and p.version(2).read_text() == curated
    assert sorted(f.name for f in p.versions.iterdir()) == [
        f"schema.v{n}.pbtxt" for n in (1, 2, 3, 4)]

    store = metadata.store(tiny)
    found = sorted(store.get_artifacts_by_type(se.SCHEMA_TYPE), key=lambda a: a.id)
    assert [(a.uri, a.custom_properties["version"].int_value,
             a.custom_properties["accepted_by"].string_value) for a in found] == [
        (str(p.version(2)), 2, "alice"), (str(p.version(4)), 4, "bob")]
    assert found[0].custom_properties["changes"].string_value == \
        "feature 'city': domain extended by 'Lima'"
    assert found[1].custom_properties["reason"].string_value == "older customers"
    [ctx] = store.get_contexts_by_type(se.CONTEXT)
    assert {a.id for a in store.get_artifacts_by_context(ctx.id)} == {a.id for a in found}


def test_a_proposal_made_before_the_curated_schema_changed_is_refused(tiny):
    frame = rows()
    frame.loc[:9, "city"] = "Lima"
    se.write_proposal(tiny, from_rows(frame))
    tiny.dataset.schema_file.write_text(SCHEMA.replace("max: 90", "max: 99"))
    with pytest.raises(se.SchemaEvolutionError, match="changed since the proposal"):
        se.accept(tiny, by="alice")


def write_log(path, frame: pd.DataFrame) -> None:
    """PredictionLogs as `fairway serve` writes them for REST :predict requests."""
    from serving import rest

    with tf.io.TFRecordWriter(str(path)) as w:
        for start in range(0, len(frame), 50):
            part = frame.iloc[start:start + 50]
            inputs = {c: (np.array([v.encode() for v in part[c]], dtype=object)
                          if part[c].dtype == object else part[c].to_numpy(np.int64))
                      for c in part.columns}
            log = rest.predict_log(inputs, {"probability": np.zeros(len(part), np.float32)},
                                   "serving_default")()
            log.log_metadata.model_spec.name = "tiny"
            log.log_metadata.model_spec.version.value = 1
            w.write(log.SerializeToString())


def test_propose_from_the_monitor_reads_the_window_it_flagged(tiny, tmp_path):
    from monitoring import history, requests

    served = rows(300).drop(columns=["label"])  # served traffic carries no label
    served.loc[100:129, "city"] = "Lima"  # only in the first window, the one flagged
    logs = tmp_path / "requests-20261201T100000Z.tfrecord"
    write_log(logs, served)
    ids = requests.read(str(logs))["_request_id"].tolist()
    h = history.History(tiny, tiny.model_name, tmp_path / "h")
    window = {"kind": "anomaly", "name": "city", "alert": True}
    h.record([{**window, "window": "w1", "first_id": ids[0], "last_id": ids[149],
               "end": "2026-12-01T10:00:00Z"},
              {**window, "window": "w2", "first_id": ids[150], "last_id": ids[299],
               "end": "2026-12-01T11:00:00Z", "kind": "feature"}],
             {"requests": str(logs), "window": "150", "k": 3.0})
    evidence = schema_cmd.served_evidence(tiny, None)
    assert evidence.environment == "SERVING"
    proposal = se.write_proposal(tiny, evidence)
    # The label, absent from served traffic as the SERVING environment allows, is left alone.
    assert [str(c) for c in proposal.changes] == [
        f"feature 'city': domain extended by 'Lima' (seen in 20.0 % of served rows of the "
        f"monitor's window w1 (150 requests in {logs}))"]


def test_a_span_with_only_the_new_category_keeps_the_numbers():
    how = DriftInjection(shift=(("age", 8.0),), new_category=(("city", "Lima"),), fraction=0.3)
    assert spans.injection(how, None) is None
    assert spans.injection(how, "all") == how
    assert spans.injection(how, "new-category", 0.05) == DriftInjection(
        (), (("city", "Lima"),), 0.05)
    assert spans.injection(how, "shift") == DriftInjection((("age", 8.0),), (), 0.3)
    with pytest.raises(DataError, match="expected a share in"):
        spans.injection(how, "new-category", 1.5)
    with pytest.raises(DataError, match="goes with --inject-drift"):
        spans.injection(how, None, 0.1)
