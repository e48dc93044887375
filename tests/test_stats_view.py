"""The statistics view (views.stats) and `fairway stats`: the numbers on the page are TFDV's,
sorting by distance finds a shifted feature, the page renders offline in headless Chromium,
bad arguments give clear errors. Small CSVs generated here, with a known distribution and
empty cells; the e2e test reads the shared census run."""
import dataclasses
import html
import json
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

from pipeline import config
from runners import cli, stats_cmd
from views import stats as view

REPO = pathlib.Path(__file__).resolve().parent.parent
ROWS, EMPTY_X, EMPTY_CAT = 1000, 0.2, 0.1
SCHEMA = """
feature { name: "x" type: FLOAT }
feature { name: "shifted" type: FLOAT }
feature { name: "count" type: INT }
feature { name: "cat" type: BYTES domain: "cat" }
feature { name: "label" type: INT int_domain { min: 0 max: 1 } }
string_domain { name: "cat" value: "a" value: "b" value: "c" }
"""


def write_csv(path: pathlib.Path, seed: int, shift: float = 0.0) -> dict[str, int]:
    """ROWS rows: x ~ N(10, 2) with exactly EMPTY_X of its cells empty, shifted ~ N(shift, 1),
    count in 0..4 (a fifth zeros), cat in a/b/c with EMPTY_CAT empty, label yes/no. Returns the
    empty cells per column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 2, ROWS)
    empty_x = set(rng.choice(ROWS, int(EMPTY_X * ROWS), replace=False))
    empty_cat = set(rng.choice(ROWS, int(EMPTY_CAT * ROWS), replace=False))
    shifted = rng.normal(shift, 1, ROWS)
    counts = rng.integers(0, 5, ROWS)
    cats = rng.choice(["a", "b", "c"], ROWS, p=[0.5, 0.3, 0.2])
    lines = ["x,shifted,count,cat,label"]
    for i in range(ROWS):
        lines.append(",".join(["" if i in empty_x else f"{x[i]:.4f}", f"{shifted[i]:.4f}",
                               str(counts[i]), "" if i in empty_cat else cats[i],
                               "yes" if i % 3 else "no"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return {"x": len(empty_x), "cat": len(empty_cat)}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """(config, base CSV, shifted CSV, empty cells of the base)."""
    root = tmp_path_factory.mktemp("stats")
    (root / "schema.pbtxt").write_text(SCHEMA)
    cfg = config.preset("census", output_dir=root / "out")
    cfg = dataclasses.replace(cfg, dataset=dataclasses.replace(
        cfg.dataset, schema_path=root / "schema.pbtxt", label="label",
        label_map={"yes": 1, "no": 0}))
    empty = write_csv(root / "base.csv", seed=1)
    write_csv(root / "span" / "train" / "data.csv", seed=2, shift=3.0)
    write_csv(root / "span" / "eval" / "data.csv", seed=3, shift=3.0)
    return cfg, root / "base.csv", root / "span", empty


def cells(page: str, feature: str, dataset: str) -> dict[str, str]:
    """{column class: text} of one dataset's line in one feature's row."""
    row = page.split(f'data-name="{html.escape(feature)}"')[1].split('<tr class="feature')[0]
    line = row.split(f'<tr data-dataset="{html.escape(dataset)}">')[1].split("</tr>")[0]
    return {k: html.unescape(v) for k, v in re.findall(r'<td class="([a-z_]+)">(.*?)</td>',
                                                      line)}


def test_the_numbers_on_the_page_are_the_csvs_and_tfdvs(small):
    cfg, base, _, empty = small
    src = stats_cmd.source(cfg, str(base))
    page = view.page([("base", src.stats)], src.schema)
    features = {f.path.step[0]: f for f in src.stats.datasets[0].features}
    x = cells(page, "x", "base")
    assert x["missing"] == f"{100 * empty['x'] / ROWS:.1f}%" == "20.0%"  # empty cell = missing
    assert x["count"] == f"{ROWS - empty['x']:,}"
    # The median is the 0.5 boundary of TFDV's quantiles histogram (10 equal-count buckets).
    [q] = [h for h in features["x"].num_stats.histograms if h.type == h.QUANTILES]
    assert x["median"] == view.fmt(q.buckets[4].high_value)
    assert abs(q.buckets[4].high_value - 10) < 0.3
    for key, field in (("mean", "mean"), ("std", "std_dev"), ("min", "min"), ("max", "max")):
        assert x[key] == view.fmt(getattr(features["x"].num_stats, field)), key
    count = cells(page, "count", "base")
    n = features["count"].num_stats
    assert count["zeros"] == view.fmt(n.num_zeros / n.common_stats.num_non_missing, True)
    cat = cells(page, "cat", "base")
    assert cat["missing"] == f"{100 * empty['cat'] / ROWS:.1f}%" == "10.0%"
    assert cat["unique"] == "3" and cat["top"].startswith("a ")
    assert cat["avg_length"] == "1"
    label = cells(page, "label", "base")  # mapped through label_map: 0/1 numbers
    assert label["mean"] == view.fmt(features["label"].num_stats.mean)
    assert abs(features["label"].num_stats.mean - 2 / 3) < 0.01
    # The schema table: one row per feature, the domain's values, the label's range.
    schema = page.split('id="schema-table"')[1]
    assert schema.count("<tr data-feature=") == 5
    assert "<td>a, b, c</td>" in schema and "<td>[0, 1]</td>" in schema


def test_sorting_by_distance_puts_the_shifted_feature_first_and_anomalies_on_their_row(small):
    cfg, base, span, _ = small
    a, b = stats_cmd.source(cfg, str(base)), stats_cmd.source(cfg, str(span))
    assert b.label == "span" and b.stats.datasets[0].num_examples == 2 * ROWS
    import tensorflow_data_validation as tfdv

    rows = view.model([("base", a.stats), ("span", b.stats)], a.schema)
    by_distance = sorted((r for r in rows if r["distance"] is not None),
                         key=lambda r: -r["distance"])
    assert by_distance[0]["name"] == "shifted" and by_distance[0]["distance"] > 0.5
    assert by_distance[0]["method"] == "jensen_shannon_divergence"
    assert {r["name"]: r["method"] for r in rows}["cat"] == "l_infty"
    assert all(r["distance"] < 0.1 for r in by_distance[1:])
    # An anomaly (a value out of the schema's domain) lands on its feature's row.
    schema = type(a.schema)()
    schema.CopyFrom(a.schema)
    next(f for f in schema.feature if f.name == "count").int_domain.max = 2
    found = tfdv.validate_statistics(b.stats, schema)
    page = view.page([("base", a.stats), ("span", b.stats)], schema, {"span": found})
    row = page.split('data-name="count"')[1].split('<tr class="feature')[0]
    assert 'class="anomaly"' in row and "span" in row
    assert 'id="anomalies-table"' in page and 'data-name="x" data-distance' in page


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with no network: every host name resolves to nothing and every
    proxied request fails. Virtual time lets the charts' promises finish first."""
    return subprocess.run([BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu",
                           "--enable-logging=stderr", "--v=0", "--window-size=1280,2600",
                           "--host-resolver-rules=MAP * ~NOTFOUND",
                           "--proxy-server=127.0.0.1:9", "--virtual-time-budget=15000",
                           *args, url], capture_output=True, text=True, timeout=90)


@pytest.mark.skipif(not BROWSER, reason="needs Chromium on PATH (`make test` installs it with "
                    "`make chromium`)")
def test_fairway_stats_renders_offline_in_headless_chromium(small, capsys):
    """`fairway stats base.csv --compare span/`: the page in a real browser with the network
    off: no console errors, no request outside file://, every chart drawn, no Vega-Lite
    warning, and sorted by distance the shifted feature comes first. Screenshot kept in
    test-artifacts/stats.png."""
    cfg, base, span, _ = small
    out = cfg.output_dir / "page"
    assert stats_cmd.run(cfg, str(base), [str(span)], str(out)) == out / "base.csv-vs-span.html"
    target = out / "base.csv-vs-span.html"
    text = target.read_text()
    assert "http://" not in text.split("<script>")[0] and "src=" not in text.split(
        "<script")[0]  # no external resource referenced before the inlined scripts
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = chromium(target.as_uri(), f"--screenshot={artifacts / 'stats.png'}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert (artifacts / "stats.png").stat().st_size > 50_000
    assert [line for line in shot.stderr.splitlines() if "CONSOLE" in line] == []
    dom = chromium(target.as_uri(), "--dump-dom").stdout
    root = re.search(r'<div class="fw-stats" id="fw-stats"([^>]*)>', dom).group(1)
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', root))
    assert attrs["rendered"] == "yes" and attrs["warnings"] == "0"
    resources = json.loads(html.unescape(attrs["resources"]))
    assert all(r.startswith("file://") for r in resources), resources
    assert int(attrs["charts"]) == 5
    assert dom.count("<svg") >= 5 and dom.count('class="mark-rect') >= 4
    numeric = dom.split('id="fw-stats-numeric"')[1].split("</table>")[0]
    assert re.findall(r'<tr class="feature[^"]*" data-name="([^"]*)"', numeric)[0] == "shifted"
    # The other toggles' state: quantile curves on a log scale, bars on a log scale.
    a, b = stats_cmd.source(cfg, str(base)), stats_cmd.source(cfg, str(span))
    toggled = out / "toggled.html"
    toggled.write_text(view.page([("base", a.stats), ("span", b.stats)], a.schema,
                                 quantiles=True, log=True))
    run = chromium(toggled.as_uri(), "--dump-dom")
    assert [line for line in run.stderr.splitlines() if "CONSOLE" in line] == []
    assert 'data-rendered="yes"' in run.stdout and 'data-warnings="0"' in run.stdout
    assert run.stdout.count('class="mark-line') >= 4  # one quantile curve chart per number


def test_fairway_stats_bad_arguments_give_clear_errors(small, capsys, tmp_path):
    cfg, base, _, _ = small
    garbage = tmp_path / "FeatureStats.pb"
    garbage.write_bytes(b"\x00not a proto")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("x,shifted,count,cat,label\n1.0,2.0,many,a,yes\n")
    schema = str(cfg.dataset.schema_file)
    cases = [
        ([str(tmp_path / "nope.csv")], "nope.csv': no such CSV file or folder"),
        (["eval@nope"], "no metadata store"),
        ([str(base), "--window", "5"], "--window N: only for a `logs:DIR` source"),
        ([str(garbage)], "expected a DatasetFeatureStatisticsList of one dataset"),
        ([f"logs:{tmp_path / 'no-logs'}"], "does not exist (expected a folder of request logs"),
    ]
    for args, expected in cases:
        code = cli.main(["stats", *args, "--output", str(tmp_path / "empty"),
                         "--to", str(tmp_path / "x")])
        err = capsys.readouterr().err
        assert code == 1 and expected in err and "Traceback" not in err, (args, err)
    # A number column holding text: the column, the schema and the value are named.
    with pytest.raises(stats_cmd.StatsError, match=r"column 'count' is INT in the schema "
                       rf"\({re.escape(schema)}\), but row 1 holds 'many'"):
        stats_cmd.source(cfg, str(bad_csv))
    with pytest.raises(SystemExit):
        cli.main(["stats", "--sort", "size"])
    assert "invalid choice: 'size'" in capsys.readouterr().err


@pytest.mark.e2e
def test_fairway_stats_of_the_latest_run_train_vs_eval(census_config, census_run, tmp_path,
                                                       capsys):
    """The default: the latest run's train vs eval, with its schema and ExampleValidator's
    anomalies; the numbers are the StatisticsGen artifact's."""
    from pipeline import artifacts, metadata

    cfg = census_run  # read-only: the page goes to tmp_path
    assert cli.main(["stats", "--config", str(census_config), "--output", str(cfg.output_dir),
                     "--to", str(tmp_path)]) == 0
    [page] = tmp_path.glob("*.html")
    assert capsys.readouterr().out.strip().endswith(str(page))
    text = page.read_text()
    uri = metadata.node_artifact(metadata.run_summary(cfg), "StatisticsGen", "ExampleStatistics")
    age = next(f for f in artifacts.load_stats(uri, "eval").datasets[0].features
               if f.path.step == ["age"])
    got = cells(text, "age", "eval")
    assert got["mean"] == view.fmt(age.num_stats.mean)
    assert got["median"] == view.fmt(view.median(age.num_stats))
    assert 'id="schema-table"' in text and "Jensen-Shannon ≤ 0.1" in text
    assert ('id="anomalies-table"' in text) or ('id="anomalies-none"' in text)


def test_a_window_of_request_logs(small, tmp_path):
    """`logs:DIR --window N`: the last N served rows, statistics as the monitor computes them."""
    import tensorflow as tf

    from serving import rest

    cfg, _, _, _ = small
    rng = np.random.default_rng(4)
    n = 300
    with tf.io.TFRecordWriter(str(tmp_path / "requests-00001.tfrecord")) as w:
        for start in range(0, n, 50):  # as `fairway serve` logs REST :predict requests
            inputs = {"shifted": rng.normal(0, 1, 50).astype(np.float32),
                      "count": rng.integers(0, 5, 50).astype(np.int64),
                      "cat": np.array([b"a", b"b"] * 25, dtype=object)}
            log = rest.predict_log(inputs, {"probability": np.zeros(50, np.float32)},
                                   "serving_default")()
            log.log_metadata.model_spec.version.value = 7
            w.write(log.SerializeToString())
    src = stats_cmd.source(cfg, f"logs:{tmp_path}", window=100)
    assert src.label == "requests (last 100)"
    features = {f.path.step[0]: f for f in src.stats.datasets[0].features}
    assert set(features) == {"shifted", "count", "cat"}  # not _version, _prediction, ...
    assert features["count"].num_stats.common_stats.num_non_missing == 100
    assert features["cat"].string_stats.unique == 2
