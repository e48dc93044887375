"""Census through `fairway init` gives the DataGate the same verdicts as the curated census
schema: both accept clean data and both refuse the same bad batches.

The examples are made as ExampleGen makes them (TFX's CSV reader in a real Beam pipeline,
empty cells dropped, label_map), the statistics by TFDV from those examples; the anomalies are
ExampleValidator's (tfdv.validate_statistics, no environment) and the drift the DataGate's
(this batch's statistics against the last accepted ones, the schema's drift_comparators).
Run with -s to see the verdict table."""
import csv
import pathlib

import apache_beam as beam
import pytest
import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import schema_pb2

from data import acquire, init, spans
from pipeline import config, example_gen

CURATED = config.SCHEMAS_DIR / "census" / "schema.pbtxt"
TRAIN_ROWS, EVAL_ROWS, SPAN_ROWS = 3000, 1500, 1000
BAD_EVERY = 20  # one row in 20 (5 %) made bad
OPTIONS = beam.options.pipeline_options.PipelineOptions(list(config.DEFAULT_BEAM_ARGS))


def pipeline_verdict(csv_dir: pathlib.Path, schemas: dict, label: str, label_map, floats,
                     work: pathlib.Path, previous=None):
    """(statistics, {schema name: {feature: problems}}) of the CSVs in csv_dir as the pipeline
    sees them: ExampleGen's examples (`floats`: the schemas' FLOAT columns, dataset.floats),
    their statistics, ExampleValidator's anomalies and, with `previous` (the last accepted
    statistics), the DataGate's drift check. No problem: pass."""
    node = example_gen.component(str(csv_dir), presplit=False, label=label, label_map=label_map,
                                 floats=floats)
    props = {"input_base": str(csv_dir), "custom_config": node.exec_properties["custom_config"]}
    with beam.Pipeline(options=OPTIONS) as p:
        _ = (p | example_gen._CsvToExamples(props, "*")  # pylint: disable=protected-access
             | beam.io.WriteToTFRecord(str(work / "examples")))
    stats = tfdv.generate_statistics_from_tfrecord(str(work / "examples*"),
                                                   pipeline_options=OPTIONS)
    verdict = {}
    for name, schema in schemas.items():
        problems = {f: [f"{a.short_description}: {a.description}"]
                    for f, a in tfdv.validate_statistics(stats, schema).anomaly_info.items()}
        if previous is not None:
            drift = tfdv.validate_statistics(stats, schema, previous_statistics=previous)
            for info in drift.drift_skew_info:
                for m in info.drift_measurements:
                    if m.value > m.threshold:
                        problems.setdefault(".".join(info.path.step), []).append(
                            f"drift {m.value:.3f} > {m.threshold:g}")
        verdict[name] = {f: "; ".join(p) for f, p in problems.items()}
    return stats, verdict


def _read(path: pathlib.Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _write(path: pathlib.Path, header, rows) -> pathlib.Path:
    path.mkdir(parents=True)
    with (path / "data.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows([header, *rows])
    return path


def _set(header, rows, column, value):
    i = header.index(column)
    return header, [r[:i] + [value] + r[i + 1:] if n % BAD_EVERY == 0 else r
                    for n, r in enumerate(rows)]


def _drop(header, rows, column):
    i = header.index(column)
    return header[:i] + header[i + 1:], [r[:i] + r[i + 1:] for r in rows]


VARIANTS = {  # the eval split, clean or made bad: ExampleValidator's verdict
    "clean": lambda h, r: (h, r),
    "age_strings": lambda h, r: _set(h, r, "age", "unknown"),
    "no_education": lambda h, r: _drop(h, r, "education"),
    "label_2": lambda h, r: _set(h, r, "income", "2"),
}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory, census_dir):
    """Init on a fixed sample of census; each variant's problems under both schemas."""
    home = census_dir
    tmp = tmp_path_factory.mktemp("verdicts")
    data = acquire.sample({"train": [home / "train" / "adult.data.csv"]}, tmp / "census",
                          TRAIN_ROWS)
    acquire.sample({"eval": [home / "eval" / "adult.test.csv"]}, tmp / "e", EVAL_ROWS)
    (tmp / "e" / "eval").rename(data / "eval")
    assert init.run(str(data), "income", sensitive="sex", groups=["Female", "Male"],
                    to=str(tmp / "cfg"), log=lambda line: None) == 0
    cfg = config.load(tmp / "cfg" / "census.toml")
    label_map = dict(cfg.dataset.label_map)
    assert not label_map  # income is 0/1 in the census CSVs, as the curated schema has it
    schemas = {"curated": tfdv.load_schema_text(str(CURATED)),
               "init": tfdv.load_schema_text(str(cfg.dataset.schema_file))}
    floats = {name: tuple(f.name for f in schema.feature if f.type == schema_pb2.FLOAT)
              for name, schema in schemas.items()}
    assert floats["curated"] == floats["init"] == cfg.dataset.floats  # one reading serves both
    read = dict(label="income", label_map=label_map, floats=cfg.dataset.floats)
    found = {}
    header, rows = _read(data / "eval" / "data.csv")
    for name, make in VARIANTS.items():
        folder = _write(tmp / "variants" / name, *make(header, rows))
        _, found[name] = pipeline_verdict(folder, schemas, work=tmp / "work" / name, **read)
    # New spans against the sample's train split as the last accepted data (DataGate: train).
    accepted, _ = pipeline_verdict(data / "train", schemas, work=tmp / "work" / "accepted",
                                   **read)
    for name, how in (("span_clean", None), ("span_drifted", cfg.inject_drift)):
        span = spans.write(data, tmp / "spans" / name, SPAN_ROWS, 2, how)
        _, found[name] = pipeline_verdict(span / "train", schemas, work=tmp / "work" / name,
                                          previous=accepted, **read)
    for name, by_schema in found.items():
        for schema, problems in by_schema.items():
            print(f"{name:<13} {schema:<8} " + ("pass" if not problems else " | ".join(
                f"{f}: {p}" for f, p in sorted(problems.items()))))
    return found


def test_both_schemas_pass_clean_data(verdicts):
    assert verdicts["clean"] == {"curated": {}, "init": {}}
    assert verdicts["span_clean"] == {"curated": {}, "init": {}}


@pytest.mark.parametrize("variant, features", [
    ("age_strings", {"age"}), ("no_education", {"education"}), ("label_2", {"income"}),
    ("span_drifted", {"age", "workclass"})])
def test_both_schemas_refuse_the_bad_batches_on_the_same_features(verdicts, variant, features):
    found = verdicts[variant]
    assert set(found["curated"]) == set(found["init"]) == features, found
