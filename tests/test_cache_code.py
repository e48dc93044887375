"""The cache is keyed on code (issue #21): each node that runs Fairway code carries the digests
of that code (pipeline.code_hash) among its parameters, so editing it re-runs the node and what
follows; `fairway status --cache` says per node whether it was cached and, if not, why.

The end-to-end test edits a copy of the `modules` package first on PYTHONPATH of `fairway run`
subprocesses (the copy is what they import and hash), never the working tree."""
from __future__ import annotations

import ast
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from pipeline import code_hash, config, metadata
from runners import cli, report

REPO = pathlib.Path(__file__).resolve().parent.parent


def _tree(root: pathlib.Path, files: dict[str, str]) -> dict[str, pathlib.Path]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return {"pkg": root / "pkg"}


PKG = {"pkg/__init__.py": "",
       "pkg/a.py": "import os\nfrom pkg import b\n",
       "pkg/b.py": "def f():\n    from . import c\n    return c\n",  # an import inside a function
       "pkg/c.py": "X = 1\n",
       "pkg/sub/__init__.py": "",
       "pkg/sub/d.py": "from ..c import X\n",
       "pkg/unrelated.py": "Y = 2\n"}


def test_digests_follow_imports_only(tmp_path):
    roots = _tree(tmp_path, PKG)
    assert list(code_hash.digests("pkg.a", roots=roots)) == [
        "pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/c.py"]
    assert list(code_hash.digests("pkg.sub.d", roots=roots)) == [
        "pkg/__init__.py", "pkg/c.py", "pkg/sub/__init__.py", "pkg/sub/d.py"]
    # shallow: the module's own file, not what it imports
    assert list(code_hash.digests("pkg.c", shallow=["pkg.a"], roots=roots)) == [
        "pkg/__init__.py", "pkg/a.py", "pkg/c.py"]
    with pytest.raises(LookupError, match="pkg.nope"):
        code_hash.digests("pkg.nope", roots=roots)


def test_digests_change_with_content_of_imported_files_only(tmp_path):
    roots = _tree(tmp_path, PKG)
    before = code_hash.digests("pkg.a", roots=roots)
    (tmp_path / "pkg/unrelated.py").write_text("Y = 3\n")
    assert code_hash.digests("pkg.a", roots=roots) == before
    (tmp_path / "pkg/c.py").write_text("X = 2\n")
    after = code_hash.digests("pkg.a", roots=roots)
    assert code_hash.changed_files(before, after) == ["pkg/c.py"]
    assert code_hash.changed_files(None, after) == sorted(after)


def test_digests_ignore_the_checkout_path_mtimes_and_pycache(tmp_path):
    one = code_hash.digests("pkg.a", roots=_tree(tmp_path / "one", PKG))
    two_roots = _tree(tmp_path / "elsewhere" / "two", PKG)
    cache = two_roots["pkg"] / "__pycache__"
    cache.mkdir()
    (cache / "a.cpython-310.pyc").write_bytes(b"\0stale bytecode")
    (cache / "c.py").write_text("X = 'not the source'\n")
    os.utime(two_roots["pkg"] / "a.py", (1, 1))
    assert code_hash.digests("pkg.a", roots=two_roots) == one
    assert code_hash.as_text(one) == json.dumps(one, sort_keys=True, separators=(",", ":"))


def test_the_real_tree_gives_each_node_the_code_it_imports():
    roots = code_hash.package_dirs()
    assert roots["modules"] == REPO / "modules"
    transform = code_hash.digests("modules.transform")
    trainer = code_hash.digests("modules.trainer")
    assert "modules/transform.py" in transform and "modules/trainer.py" not in transform
    assert {"modules/trainer.py", "modules/model.py", "modules/mindiff.py",
            "modules/distillation.py", "modules/signatures.py"} <= set(trainer)
    assert "modules/transform.py" not in trainer
    assert not any("__pycache__" in k for k in trainer)


def test_every_fairway_node_carries_its_code_in_its_parameters(tmp_path):
    """The compiled pipeline: Transform and the Trainers in custom_config, the ExampleGen in
    its custom_config, DataGate, ServingCheck and the Evaluator (its FPR-gap metric) as a
    `code_hash` parameter; each the digests of what that node runs."""
    from test_pipeline_compile import compile_nodes

    from pipeline import pipeline as pipeline_lib

    cfg = config.preset("census", output_dir=tmp_path)
    nodes = compile_nodes(cfg, tmp_path, with_baseline=True)

    def param(node, key):
        return nodes[node].parameters.parameters[key].field_value.string_value

    code = {n: json.loads(param(n, "custom_config"))[code_hash.KEY]
            for n in ("Transform", pipeline_lib.TEACHER, pipeline_lib.STUDENT,
                      pipeline_lib.BASELINE)}
    assert code["Transform"] == code_hash.digests("modules.transform")
    assert code[pipeline_lib.TEACHER] == code[pipeline_lib.STUDENT] == \
        code[pipeline_lib.BASELINE] == code_hash.digests("modules.trainer")
    example_gen = json.loads(param("CsvExampleGen", "custom_config"))
    assert "pipeline/example_gen.py" in example_gen["custom_config"]["value"][code_hash.KEY]
    gate, check = (json.loads(param(n, code_hash.KEY)) for n in ("DataGate", "ServingCheck"))
    assert {"pipeline/data_gate.py", "pipeline/components.py"} <= set(gate)
    assert "pipeline/serving_check.py" not in gate
    assert {"pipeline/serving_check.py", "serving/servable.py"} <= set(check)
    assert "pipeline/tfma_metrics.py" in json.loads(param("Evaluator", code_hash.KEY))
    # The same tree compiled twice: the same parameters (no churn of cache keys).
    again = compile_nodes(cfg, tmp_path / "again", with_baseline=True)
    for n in ("Transform", pipeline_lib.TEACHER, "DataGate", "Evaluator"):
        assert again[n].parameters == nodes[n].parameters


# `fairway status --cache` on a store laid out as TFX 1.16 lays it out: contexts `pipeline`,
# `pipeline_run`, `node` (`<pipeline>.<node>`), `execution_cache`; exec properties as custom
# properties; input artifacts as INPUT events keyed by the input name.

class _Store:
    def __init__(self, cfg):
        cfg.metadata_path.parent.mkdir(parents=True, exist_ok=True)
        self.s = metadata_store.MetadataStore(metadata.connection_config(cfg))
        self.pipeline = cfg.pipeline_name
        self.types = {name: self.s.put_context_type(pb.ContextType(name=name))
                      for name in ("pipeline", "pipeline_run", "node", "execution_cache")}
        self.artifact_type = self.s.put_artifact_type(pb.ArtifactType(name="Examples"))
        self.contexts = {}
        self.runs = 0
        self.ctx("pipeline", self.pipeline)

    def ctx(self, kind, name):
        if (kind, name) not in self.contexts:
            [cid] = self.s.put_contexts([pb.Context(type_id=self.types[kind], name=name)])
            self.contexts[kind, name] = cid
        return self.contexts[kind, name]

    def artifact(self) -> int:
        [aid] = self.s.put_artifacts([pb.Artifact(type_id=self.artifact_type, uri="/x")])
        return aid

    def run(self, *executions):
        """executions: (node, state, params, {input: [artifact ids]}, cache key)."""
        self.runs += 1
        run_ctx = self.ctx("pipeline_run", f"run-{self.runs}")
        self.s.put_parent_contexts([pb.ParentContext(
            child_id=run_ctx, parent_id=self.ctx("pipeline", self.pipeline))])
        for node, state, params, inputs, key in executions:
            type_name = ("tfx.dsl.components.common.resolver.Resolver"
                         if node.endswith("resolver") else f"tfx.{node}")
            etype = self.s.put_execution_type(pb.ExecutionType(name=type_name))
            e = pb.Execution(type_id=etype, last_known_state=getattr(pb.Execution, state))
            for k, v in params.items():
                e.custom_properties[k].string_value = v if isinstance(v, str) else json.dumps(v)
            events = [(self.s.get_artifacts_by_id([a])[0],
                       pb.Event(type=pb.Event.INPUT,
                                path=pb.Event.Path(steps=[pb.Event.Path.Step(key=k)])))
                      for k, ids in inputs.items() for a in ids]
            contexts = self.s.get_contexts_by_id([self.ctx(*c) for c in (
                ("pipeline", self.pipeline), ("pipeline_run", f"run-{self.runs}"),
                ("node", f"{self.pipeline}.{node}"),
                *([("execution_cache", key)] if key else []))])
            self.s.put_execution(e, events, contexts)


@pytest.fixture
def cache_store(tmp_path):
    cfg = config.preset("census", output_dir=tmp_path)
    st = _Store(cfg)
    ex1, ex2, m1, m2 = (st.artifact() for _ in range(4))
    trainer = {"custom_config": {"training": {"train_steps": 100}, "features": {"a": 1},
                                 code_hash.KEY: {"modules/trainer.py": "1",
                                                 "modules/model.py": "1"}},
               "run_fn": "modules.trainer.run_fn"}
    gate = {code_hash.KEY: code_hash.as_text({"pipeline/data_gate.py": "1"})}
    st.run(("CsvExampleGen", "COMPLETE", {}, {}, "k-eg"),
           ("Transform", "COMPLETE", {}, {"examples": [ex1]}, "k-t"),
           ("TeacherTrainer", "COMPLETE", trainer, {"examples": [ex1]}, "k-tr1"),
           ("StudentTrainer", "COMPLETE", trainer, {"examples": [ex1]}, "k-st1"),
           ("DataGate", "COMPLETE", gate, {}, "k-g1"),
           ("Evaluator", "COMPLETE", {}, {"model": [m1]}, "k-e1"))
    edited = json.loads(json.dumps(trainer))
    edited["custom_config"][code_hash.KEY]["modules/trainer.py"] = "2"
    tuned = json.loads(json.dumps(trainer))
    tuned["custom_config"]["training"]["train_steps"] = 50
    st.run(("CsvExampleGen", "COMPLETE", {}, {}, "k-eg"),  # same key, ran again: cache off
           ("previous_statistics_resolver", "COMPLETE", {}, {}, None),
           ("Transform", "CACHED", {}, {"examples": [ex1]}, "k-t"),
           ("TeacherTrainer", "COMPLETE", edited, {"examples": [ex1]}, "k-tr2"),
           ("StudentTrainer", "FAILED", tuned, {"examples": [ex1]}, "k-st2"),
           ("DataGate", "COMPLETE", {code_hash.KEY: code_hash.as_text(
               {"pipeline/data_gate.py": "1", "pipeline/errors.py": "1"})}, {}, "k-g2"),
           ("Evaluator", "COMPLETE", {}, {"model": [m2]}, "k-e2"),
           ("Pusher", "COMPLETE", {}, {"examples": [ex2]}, "k-p"))
    return cfg


def test_status_cache_says_why_each_node_ran(cache_store):
    nodes = {n["node"]: n for n in metadata.cache_summary(cache_store)["nodes"]}
    why = {k: n["reasons"] for k, n in nodes.items()}
    assert why["Transform"] == ["cached"] and nodes["Transform"]["cache_hit"] is True
    assert why["TeacherTrainer"] == ["code changed (modules/trainer.py)"]
    assert nodes["TeacherTrainer"]["cache_hit"] is False
    assert why["StudentTrainer"] == ["parameter custom_config changed (training.train_steps)"]
    assert why["DataGate"] == ["code changed (pipeline/errors.py)"]
    assert why["Evaluator"] == ["input model changed (artifact 3 -> 4)"]
    assert why["Pusher"] == ["first run of this node"]
    assert "caching was off" in why["CsvExampleGen"][0]
    assert nodes["previous_statistics_resolver"]["cache_hit"] is None

    text = report.cache_text(metadata.cache_summary(cache_store))
    lines = {line.split()[0]: line for line in text.splitlines()[3:] if line.strip()}
    assert lines["Transform"].endswith("CACHED     cached")
    assert lines["TeacherTrainer"].endswith("re-ran: code changed (modules/trainer.py)")
    assert "ran and failed: parameter custom_config changed" in lines["StudentTrainer"]
    assert lines["Pusher"].endswith("ran: first run of this node")
    assert "1 cached, 6 ran" in text


def test_status_cache_command_text_and_json(cache_store, capsys):
    args = ["status", "--dataset", "census", "--output", str(cache_store.output_dir), "--cache"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "TeacherTrainer" in out and "re-ran: code changed (modules/trainer.py)" in out
    assert cli.main([*args, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    teacher = next(n for n in summary["nodes"] if n["node"] == "TeacherTrainer")
    assert teacher["cache_hit"] is False and teacher["compared_with"] is not None
    assert teacher["reasons"] == ["code changed (modules/trainer.py)"]


def test_status_cache_without_a_store_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["status", "--dataset", "census", "--output", str(tmp_path),
                     "--cache"]) == 1
    err = capsys.readouterr().err
    assert "no metadata store" in err and "Traceback" not in err


# End to end: real runs of the small census config on a copy of `modules`.

def _edit(path: pathlib.Path, fn: str, line: str) -> None:
    """Insert `line` as the first statement of function `fn` (after its docstring)."""
    text = path.read_text()
    [f] = [n for n in ast.walk(ast.parse(text))
           if isinstance(n, ast.FunctionDef) and n.name == fn]
    first = f.body[1] if ast.get_docstring(f) is not None else f.body[0]
    lines = text.splitlines(keepends=True)
    lines.insert(first.lineno - 1, " " * first.col_offset + line + "\n")
    path.write_text("".join(lines))


@pytest.mark.e2e
def test_editing_code_reruns_exactly_the_nodes_that_run_it(census_config, tmp_path):
    code, out = tmp_path / "code", tmp_path / "out"
    shutil.copytree(REPO / "modules", code / "modules",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(code), *filter(None, [os.environ.get("PYTHONPATH")])])}
    cfg = config.load(census_config, output_dir=out)
    fairway = pathlib.Path(sys.executable).with_name("fairway")

    def run() -> tuple[int, dict[str, dict]]:
        p = subprocess.run([str(fairway), "run", "--config", str(census_config), "--sample",
                            "1000", "--train-steps", "50", "--output", str(out)],
                           env=env, cwd=tmp_path, capture_output=True, text=True)
        run.output = p.stdout + p.stderr
        return p.returncode, {n["node"]: n for n in metadata.cache_summary(cfg)["nodes"]}

    def states(nodes):
        return {k: n["state"] for k, n in nodes.items() if not k.endswith("_resolver")}

    upstream = ["CsvExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator"]
    rc, first = run()
    assert rc == 0, run.output

    # The reproduction: the edited teacher must run (and fail), Transform stays cached.
    trainer = code / "modules" / "trainer.py"
    original = trainer.read_text()
    _edit(trainer, "run_fn", 'raise RuntimeError("x")')
    rc, nodes = run()
    assert rc == 1 and "TeacherTrainer failed: RuntimeError: x" in run.output, run.output
    assert "Traceback" not in run.output
    assert {k: nodes[k]["state"] for k in [*upstream, "Transform"]} == \
        dict.fromkeys([*upstream, "Transform"], "CACHED")
    assert nodes["TeacherTrainer"]["state"] == "FAILED"
    assert nodes["TeacherTrainer"]["reasons"] == ["code changed (modules/trainer.py)"]

    # The trainer as it was: its own code matches the first run again (what follows re-runs
    # because the edit of transform.py below changes the Trainers' inputs). The failed run above
    # already proves the edited code is what ran: a separate working edit cost a whole run.
    trainer.write_text(original)

    # An edit of transform.py: Transform re-runs for its code, the Trainers for its output.
    _edit(code / "modules" / "transform.py", "preprocessing_fn",
          '__import__("pathlib").Path(__file__).with_name("transform.ran").touch()')
    rc, nodes = run()
    assert rc == 0, run.output
    assert (code / "modules" / "transform.ran").exists()
    s = states(nodes)
    assert {k: s[k] for k in upstream} == dict.fromkeys(upstream, "CACHED")
    assert nodes["Transform"]["reasons"] == ["code changed (modules/transform.py)"]
    teacher = nodes["TeacherTrainer"]["reasons"]
    assert s["TeacherTrainer"] == s["StudentTrainer"] == "COMPLETE"
    assert not any(r.startswith("code changed") for r in teacher)
    assert {r.split(" (")[0] for r in teacher} == {"input examples changed",
                                                   "input transform_graph changed"}

    assert set(first) == set(nodes)
    # An unchanged re-run stays cached (all but the DataGate, whose drift reference is the
    # previous run's output): test_e2e's re-run of the session run checks it.
