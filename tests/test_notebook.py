"""runners.notebook in a real Jupyter kernel: a notebook that calls show_stats on a CSV made
here is executed with nbclient (the .venv's ipykernel, through a kernel spec in a temporary
folder), its output is the statistics view in an iframe with the CSV's numbers, a mistake is
one line without a traceback, and the output renders in headless Chromium with the network
off. The CSV and its schema are test_stats_view's (a known distribution, empty cells)."""
import html
import json
import pathlib
import re
import sys
import time

import pytest
from test_stats_view import BROWSER, ROWS, SCHEMA, cells, chromium, write_csv

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIG = """[dataset]
name = "nb"
numeric = ["x", "shifted", "count"]
categorical = ["cat"]
label = "label"
label_map = {"yes" = 1, "no" = 0}
csv_dir = "data.csv"
schema = "schema.pbtxt"

[mindiff]
weight = 0.0
"""
CELLS = [
    ("from runners.notebook import show_stats\n"
     "show_stats('data.csv', config='nb.toml')", []),
    ("show_stats('nope.csv', config='nb.toml')", ["raises-exception"]),
]
# The host page of the output, as a notebook shows it. Its Content Security Policy, which an
# about:srcdoc frame inherits, turns any request the view makes (even to file://) into a
# console message; the control frame proves that it does.
CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
       "style-src 'unsafe-inline'; img-src data:")
CONTROL = ('<iframe sandbox="allow-scripts" style="height:40px" srcdoc="&lt;img '
           'src=&quot;http://example.invalid/probe.png&quot;&gt;"></iframe>')
BAR = (155, 182, 229)  # a histogram bar: #4a7bd0 at opacity 0.55 on white


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """(the executed notebook, the CSV's empty cells, seconds taken)."""
    import nbformat
    from nbclient import NotebookClient

    root = tmp_path_factory.mktemp("notebook")
    work = root / "work"
    empty = write_csv(work / "data.csv", seed=1)
    (work / "schema.pbtxt").write_text(SCHEMA)
    (work / "nb.toml").write_text(CONFIG)
    # The .venv's ipykernel, whatever `python` is on PATH; Jupyter's and IPython's files in
    # the temporary folder, not the home directory.
    spec = root / "jupyter" / "kernels" / "fairway-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "fairway test", "language": "python"}))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, metadata={"tags": tags}) for src, tags in CELLS]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root / "jupyter"))
        mp.setenv("JUPYTER_RUNTIME_DIR", str(root / "runtime"))
        mp.setenv("IPYTHONDIR", str(root / "ipython"))
        started = time.perf_counter()
        NotebookClient(nb, kernel_name="fairway-test", timeout=180,
                       resources={"metadata": {"path": str(work)}}).execute()
    nbformat.write(nb, root / "executed.ipynb")
    return nb, empty, time.perf_counter() - started


def html_output(cell) -> str:
    [out] = [o for o in cell.outputs if "text/html" in o.get("data", {})]
    return out["data"]["text/html"]


def test_show_stats_in_a_notebook_shows_the_csvs_statistics_in_an_iframe(executed):
    nb, empty, seconds = executed
    shown = html_output(nb.cells[0])
    assert nb.cells[0].outputs[-1]["output_type"] == "execute_result"  # the cell's value
    frame = re.fullmatch(r'<iframe class="fairway-view" title="([^"]*)" '
                         r'sandbox="allow-scripts" srcdoc="([^"]*)" style="[^"]*"></iframe>',
                         shown)
    assert frame, shown[:300]
    assert frame.group(1) == "Statistics: data.csv"
    page = html.unescape(frame.group(2))
    assert page.startswith("<!doctype html>") and "vega-lite.min.js" in page
    for feature in ("x", "shifted", "count", "cat", "label"):
        assert f'data-name="{feature}"' in page, feature
    # The missing % shown is the CSV's share of empty cells (20 % of x, 10 % of cat).
    assert cells(page, "x", "data.csv")["missing"] == f"{100 * empty['x'] / ROWS:.1f}%" \
        == "20.0%"
    assert cells(page, "cat", "data.csv")["missing"] == f"{100 * empty['cat'] / ROWS:.1f}%"
    assert cells(page, "x", "data.csv")["count"] == f"{ROWS - empty['x']:,}"
    print(f"notebook executed in {seconds:.1f}s")


def test_a_mistake_in_a_notebook_is_one_line_without_a_traceback(executed):
    nb, _, _ = executed
    [error] = [o for o in nb.cells[1].outputs if o["output_type"] == "error"]
    assert error["ename"] == "NotebookError"
    [line] = error["traceback"]
    assert "'nope.csv': no such CSV file or folder" in line
    assert "File " not in line and "stats_cmd" not in line


@pytest.mark.skipif(not BROWSER, reason="needs Chromium on PATH (`make test` installs it with "
                    "`make chromium`)")
def test_the_notebook_output_renders_offline_in_headless_chromium(executed, tmp_path):
    """The cell's HTML output in a page, opened by Chromium with no network: no console
    message but the control frame's (the view requests nothing, not even a file), and the
    charts are drawn inside the iframe (bar-coloured pixels on the screenshot). The screenshot
    is kept in test-artifacts/notebook.png."""
    from PIL import Image

    nb, _, _ = executed
    host = tmp_path / "output.html"
    host.write_text(f'<!doctype html><html><head><meta charset="utf-8"><meta '
                    f'http-equiv="Content-Security-Policy" content="{CSP}"></head><body>'
                    f'<div class="output_html">{html_output(nb.cells[0])}</div>{CONTROL}'
                    "</body></html>")
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = chromium(host.as_uri(), "--window-size=1280,900",
                    f"--screenshot={artifacts / 'notebook.png'}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    console = [line for line in shot.stderr.splitlines() if "CONSOLE" in line]
    assert len(console) == 1 and "example.invalid/probe.png" in console[0] \
        and "Content Security Policy" in console[0], console
    image = Image.open(artifacts / "notebook.png").convert("RGB")
    bars = sum(n for n, rgb in image.getcolors(1 << 20)
               if all(abs(a - b) <= 6 for a, b in zip(rgb, BAR)))
    assert bars > 2000, bars  # the histograms of the first features, drawn by Vega
