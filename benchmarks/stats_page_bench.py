"""`make bench-stats`: the statistics view's page weight and time to render, at 15 and 200
features (half numeric, half categorical; two datasets, the second shifted), in headless
Chromium; with `--plotly FILE` (a plotly.min.js) the same histograms drawn by Plotly, side by
side, for the choice of chart library (views/vendor/README.md).

Measured per size: page bytes (and gzipped), seconds to build the page in Python (statistics
excluded), the page's own time to draw every chart (`data-render-ms`, performance.now() in the
page) and Chromium's wall time to load and dump the page. Writes
outputs/bench/stats_page.{json,md}.
"""
from __future__ import annotations

import argparse
import gzip
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

REPO = pathlib.Path(__file__).resolve().parent.parent
OUT = REPO / "outputs" / "bench"


def frames(features: int, rows: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def one(shift: float) -> pd.DataFrame:
        cols = {}
        for i in range(features):
            if i % 2 == 0:
                x = rng.normal(i + shift * (i % 3 == 0), 1 + i % 5, rows)
                x[rng.random(rows) < 0.05] = np.nan
                cols[f"num_{i:03d}"] = x
            else:
                k = 3 + i % 20
                cols[f"cat_{i:03d}"] = rng.choice([f"v{j}" for j in range(k)], rows).astype(object)
        return pd.DataFrame(cols)

    return one(0.0), one(1.0)


def chromium(url: str) -> tuple[float, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        sys.exit("bench-stats: needs Chromium on PATH (`make chromium`)")
    start = time.perf_counter()
    dom = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                          "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,2000",
                          "--virtual-time-budget=60000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=300).stdout
    return time.perf_counter() - start, dom


def plotly_page(plotly: pathlib.Path, model: list[dict]) -> str:
    """The same numeric histograms and category bars, one Plotly chart per feature."""
    data = []
    for row in model:
        traces = []
        for label, s in row["series"].items():
            if row["kind"] == "numeric":
                traces.append({"type": "bar", "name": label, "opacity": 0.55,
                               "x": [(b[0] + b[1]) / 2 for b in s["hist"]],
                               "width": [b[1] - b[0] for b in s["hist"]],
                               "y": [b[2] for b in s["hist"]]})
            else:
                top = s["top"][:10]
                traces.append({"type": "bar", "orientation": "h", "name": label,
                               "y": [t[0] for t in top], "x": [t[1] for t in top]})
        data.append(traces)
    script = """
const t0 = performance.now();
const data = JSON.parse(document.getElementById('d').textContent);
const root = document.getElementById('root');
Promise.all(data.map(traces => { const el = document.createElement('div'); root.appendChild(el);
  return Plotly.newPlot(el, traces, {width: 330, height: 130, barmode: 'overlay',
    margin: {l: 40, r: 5, t: 5, b: 25}, showlegend: false}, {staticPlot: false}); }))
  .then(() => { root.dataset.renderMs = Math.round(performance.now() - t0);
                root.dataset.rendered = 'yes'; });
"""
    return ("<!doctype html><html><head><meta charset='utf-8'></head><body><div id='root'>"
            f"</div><script type='application/json' id='d'>{json.dumps(data)}</script>"
            f"<script>{plotly.read_text()}</script><script>{script}</script></body></html>")


def measure(name: str, text: str, tmp: pathlib.Path, build_s: float) -> dict:
    path = tmp / f"{name}.html"
    path.write_text(text, encoding="utf-8")
    wall, dom = chromium(path.as_uri())
    ms = re.search(r'data-render-ms="(\d+)"', dom)
    return {"page": name, "bytes": len(text.encode()),
            "gzip_bytes": len(gzip.compress(text.encode())), "build_s": round(build_s, 3),
            "render_ms": int(ms.group(1)) if ms else None,
            "rendered": 'data-rendered="yes"' in dom, "chromium_wall_s": round(wall, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="15,200", help="feature counts (15,200)")
    p.add_argument("--plotly", type=pathlib.Path, help="a plotly.min.js to compare with")
    args = p.parse_args(argv)
    import tensorflow_data_validation as tfdv

    from views import stats as view

    results = []
    with tempfile.TemporaryDirectory() as d:
        tmp = pathlib.Path(d)
        for n in [int(x) for x in args.sizes.split(",")]:
            a, b = (tfdv.generate_statistics_from_dataframe(f) for f in frames(n))
            start = time.perf_counter()
            text = view.page([("base", a), ("shifted", b)], title=f"{n} features")
            build = time.perf_counter() - start
            results.append({"features": n, "library": "vega-lite",
                            **measure(f"vega-{n}", text, tmp, build)})
            if args.plotly:
                model = view.model([("base", a), ("shifted", b)])
                start = time.perf_counter()
                text = plotly_page(args.plotly, model)
                build = time.perf_counter() - start
                results.append({"features": n, "library": "plotly",
                                **measure(f"plotly-{n}", text, tmp, build)})
            print(json.dumps(results[-1]) if not args.plotly else
                  "\n".join(json.dumps(r) for r in results[-2:]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "stats_page.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = ["| features | library | bytes | gzip bytes | build s | render ms | Chromium s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['features']} | {r['library']} | {r['bytes']:,} | {r['gzip_bytes']:,} | "
              f"{r['build_s']} | {r['render_ms']} | {r['chromium_wall_s']} |" for r in results]
    (OUT / "stats_page.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
