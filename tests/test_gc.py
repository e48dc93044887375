"""`fairway gc` and `fairway metadata backup|restore` without a pipeline run: a small SQLite
ML Metadata store written the way TFX records runs (pipeline_run contexts of the pipeline,
executions with keyed input/output events, cached executions re-outputting older artifacts),
each artifact a real folder under the pipeline root, versions in the registry."""
import json
import os
import shutil
import time

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import config, metadata, store_backup
from release import gc, registry
from runners import cli, store_cmd

FUTURE = time.time() + 86400  # "now" for plans in which no run is recent


class Fake:
    """A store and pipeline root to write runs into, node by node."""

    def __init__(self, cfg):
        self.cfg = cfg
        cfg.pipeline_root.mkdir(parents=True)
        self.s = metadata_store.MetadataStore(metadata.connection_config(cfg))
        self.ctx_types = {n: self.s.put_context_type(mlmd.ContextType(name=n))
                          for n in ("pipeline", "pipeline_run", "node")}
        self.exec_type = self.s.put_execution_type(mlmd.ExecutionType(name="Component"))
        [pid] = self.s.put_contexts([mlmd.Context(type_id=self.ctx_types["pipeline"],
                                                  name=cfg.pipeline_name)])
        self.pipeline = self.s.get_contexts_by_id([pid])[0]
        self.version = 0

    def context(self, kind: str, name: str) -> mlmd.Context:
        found = self.s.get_context_by_type_and_name(kind, name)
        if found is None:
            [cid] = self.s.put_contexts([mlmd.Context(type_id=self.ctx_types[kind], name=name)])
            found = self.s.get_contexts_by_id([cid])[0]
        return found

    def new_run(self, name: str) -> mlmd.Context:
        run = self.context("pipeline_run", name)
        self.s.put_parent_contexts([mlmd.ParentContext(child_id=run.id,
                                                       parent_id=self.pipeline.id)])
        return run

    def node(self, run, node: str, inputs: dict, outputs: dict,
             state=mlmd.Execution.COMPLETE, props: dict | None = None) -> dict[str, int]:
        """An execution of `node` in `run`: `inputs` key -> artifact id; `outputs` key -> a
        type name (a new artifact, a folder of 1000 bytes) or an artifact id (cached)."""
        [eid] = self.s.put_executions([mlmd.Execution(type_id=self.exec_type,
                                                      last_known_state=state)])
        pairs = []
        for key, id_ in inputs.items():
            [a] = self.s.get_artifacts_by_id([id_])
            pairs.append((a, event(mlmd.Event.INPUT, key)))
        for key, kind in outputs.items():
            if isinstance(kind, int):
                [a] = self.s.get_artifacts_by_id([kind])
            else:
                uri = self.cfg.pipeline_root / node / key / str(eid)
                uri.mkdir(parents=True)
                (uri / "data").write_bytes(b"x" * 1000)
                a = mlmd.Artifact(type_id=self.s.put_artifact_type(mlmd.ArtifactType(name=kind)),
                                  uri=str(uri), state=mlmd.Artifact.LIVE)
                for k, v in (props or {}).get(key, {}).items():
                    field = "int_value" if isinstance(v, int) else "string_value"
                    setattr(a.custom_properties[k], field, v)
            pairs.append((a, event(mlmd.Event.OUTPUT, key)))
        execution = self.s.get_executions_by_id([eid])[0]
        _, ids, _ = self.s.put_execution(execution, pairs, [
            self.pipeline, run, self.context("node", f"{self.cfg.pipeline_name}.{node}")])
        return {key: ids[len(inputs) + i] for i, key in enumerate(outputs)}

    def run(self, name: str, examples: int | None = None, blessed: bool = True,
            push: bool = True) -> dict[str, int]:
        """A run like Fairway's (ExampleGen ... Pusher); `examples`: reuse them (cached
        ExampleGen, StatisticsGen, Transform of an earlier run, as TFX records a cache hit)."""
        r, cached = self.new_run(name), mlmd.Execution.CACHED
        if examples is None:
            ids = self.node(r, "CsvExampleGen", {}, {"examples": "Examples"})
            ids |= self.node(r, "StatisticsGen", ids, {"statistics": "ExampleStatistics"})
            ids |= self.node(r, "Transform", {"examples": ids["examples"]}, {
                "transform_graph": "TransformGraph", "transformed_examples": "Examples"})
        else:
            earlier = self.outputs_of(examples)
            ids = self.node(r, "CsvExampleGen", {}, {"examples": examples}, cached)
            ids |= self.node(r, "StatisticsGen", ids, {"statistics": earlier["statistics"]},
                             cached)
            ids |= self.node(r, "Transform", {"examples": examples}, {
                k: earlier[k] for k in ("transform_graph", "transformed_examples")}, cached)
        ids |= self.node(r, "DataGate", {"statistics": ids["statistics"]},
                         {"accepted": "ExampleStatistics"})
        ids |= self.node(r, "StudentTrainer", {
            "examples": ids["transformed_examples"], "transform_graph": ids["transform_graph"]},
            {"model": "Model", "model_run": "ModelRun"})
        ids |= self.node(r, "Evaluator", {"examples": ids["examples"], "model": ids["model"]},
                         {"blessing": "ModelBlessing", "evaluation": "ModelEvaluation"},
                         props={"blessing": {"blessed": int(blessed),
                                             "current_model_id": ids["model"]}})
        ids |= self.node(r, "ServingCheck", {"model": ids["model"]},
                         {"infra_blessing": "InfraBlessing"})
        if push and blessed:
            self.version += 1
            dest = self.cfg.model_base_dir / str(self.version)
            dest.mkdir(parents=True)
            (dest / "saved_model.pb").write_bytes(b"model")
            ids |= self.node(r, "Pusher", {k: ids[k] for k in ("blessing", "infra_blessing")},
                             {"pushed_model": "PushedModel"}, props={"pushed_model": {
                                 "pushed": 1, "pushed_version": str(self.version),
                                 "pushed_destination": str(dest)}})
            ids["version"] = self.version
        return ids

    def outputs_of(self, examples: int) -> dict[str, int]:
        """The StatisticsGen and Transform outputs computed from `examples`."""
        out = {}
        for ev in self.s.get_events_by_artifact_ids([examples]):
            if ev.type == mlmd.Event.INPUT:
                for o in self.s.get_events_by_execution_ids([ev.execution_id]):
                    if o.type == mlmd.Event.OUTPUT:
                        out[o.path.steps[0].key] = o.artifact_id
        return out

    def state(self, id_: int) -> int:
        return self.s.get_artifacts_by_id([id_])[0].state

    def uri(self, id_: int) -> str:
        return self.s.get_artifacts_by_id([id_])[0].uri


def event(kind, key: str) -> mlmd.Event:
    e = mlmd.Event(type=kind)
    e.path.steps.add().key = key
    e.path.steps.add().index = 0
    return e


@pytest.fixture
def cfg(tmp_path):
    return config.preset("census", output_dir=tmp_path / "out")


@pytest.fixture
def fake(cfg):
    return Fake(cfg)


@pytest.fixture
def day(fake):
    """Four runs: r1 pushes v1 (its folder still served), r2 pushes v2 (production), r3 pushes
    v3 and its folder was removed by hand, r4 reuses r3's data from the cache and is not
    blessed; every run's DataGate accepted its data."""
    runs = {"r1": fake.run("r1"), "r2": fake.run("r2")}
    runs["r3"] = fake.run("r3")
    runs["r4"] = fake.run("r4", examples=runs["r3"]["examples"], blessed=False)
    registry.Registry(fake.cfg, store=fake.s).promote(runs["r2"]["version"], "production")
    shutil.rmtree(fake.cfg.model_base_dir / str(runs["r3"]["version"]))
    return runs


def test_keeps_what_is_in_use_and_plans_the_rest(fake, day):
    p = gc.plan(fake.cfg, keep_runs=1, now=FUTURE, settle=0)
    r1, r2, r3, r4 = (day[k] for k in ("r1", "r2", "r3", "r4"))
    assert p.kept_runs == ["r4"] and p.runs == ["r4", "r3", "r2", "r1"]
    why = p.why
    # The newest run, and what it took from the cache of r3.
    assert why[r4["model"]] == why[r3["transformed_examples"]] == gc.KEPT_RUN
    assert why[r3["examples"]] == why[r4["accepted"]] == gc.KEPT_RUN
    # Production: what card, report and monitor read of its run, not the training-only rest.
    for key in ("examples", "statistics", "transform_graph", "model", "evaluation", "blessing",
                "infra_blessing", "pushed_model", "accepted"):
        assert why[r2[key]] == "alias production", key
    # The latest blessed model (r4 was not blessed) and its blessing.
    assert why[r3["model"]] == why[r3["blessing"]] == gc.LATEST_BLESSED
    # v1's folder is still served: its pushed model and source, nothing else of r1.
    for key in ("pushed_model", "blessing", "infra_blessing", "model", "transform_graph"):
        assert why[r1[key]] == gc.SERVING_FOLDER, key
    deleted = {c.id for c in p.delete}
    assert deleted == {r1["examples"], r1["statistics"], r1["transformed_examples"],
                       r1["accepted"], r1["model_run"], r1["evaluation"],
                       r2["transformed_examples"], r2["model_run"],
                       r3["model_run"], r3["evaluation"], r3["infra_blessing"],
                       r3["pushed_model"], r3["accepted"]}
    assert not deleted & set(why)
    assert sum(c.bytes for c in p.delete) == 1000 * len(deleted)
    assert p.kept["alias production"] == 9 and sum(p.kept.values()) == len(why)


def test_the_drift_reference_survives_a_failed_run(fake, day):
    """The newest run stopped at its DataGate (no `accepted`): the previous accepted
    statistics stay the reference, though no kept run used them."""
    r5 = fake.new_run("r5")
    gen = fake.node(r5, "CsvExampleGen", {}, {"examples": "Examples"})
    fake.node(r5, "DataGate", gen, {}, state=mlmd.Execution.FAILED)
    p = gc.plan(fake.cfg, keep_runs=1, now=FUTURE, settle=0)
    assert p.kept_runs == ["r5"]
    assert p.why[day["r4"]["accepted"]] == gc.DRIFT_REFERENCE
    assert p.why.get(day["r3"]["accepted"]) != gc.DRIFT_REFERENCE


def test_keep_runs_and_older_than_choose_the_runs(fake):
    for name in ("old", "middle", "new"):
        fake.run(name, push=False)
        time.sleep(0.3)
    created = {c.name: c.create_time_since_epoch / 1000
               for c in fake.s.get_contexts_by_type("pipeline_run")}
    now = max(e.last_update_time_since_epoch for e in fake.s.get_executions()) / 1000 + 0.1

    def kept(**kw):
        return gc.plan(fake.cfg, now=now, settle=0, **kw).kept_runs

    assert kept(keep_runs=1) == ["new"]
    assert kept(keep_runs=2) == ["new", "middle"]
    assert kept(keep_runs=5) == ["new", "middle", "old"]
    # Both must hold for a run to go: beyond the N newest and older than D.
    assert kept(keep_runs=1, older_than=now - created["middle"] + 0.1) == ["new", "middle"]
    assert kept(keep_runs=1, older_than=0.05) == ["new"]
    assert kept(keep_runs=2, older_than=0.05) == ["new", "middle"]
    with pytest.raises(gc.GcError):
        gc.plan(fake.cfg, keep_runs=0)


def test_a_run_in_progress_is_kept_whole(fake):
    busy = fake.new_run("busy")  # an older run, still training
    gen = fake.node(busy, "CsvExampleGen", {}, {"examples": "Examples"})
    fake.node(busy, "StudentTrainer", gen, {"model": "Model"}, state=mlmd.Execution.RUNNING)
    fake.run("done-1", push=False)
    fake.run("done-2", push=False)
    p = gc.plan(fake.cfg, keep_runs=1, now=FUTURE, settle=0)
    assert p.in_progress == ["busy"] and p.kept_runs == ["done-2"]
    assert p.why[gen["examples"]] == gc.IN_PROGRESS
    # The N newest are counted among finished runs: one starting keeps the last one's cache.
    starting = fake.new_run("starting")
    fake.node(starting, "CsvExampleGen", {}, {"examples": "Examples"}, mlmd.Execution.RUNNING)
    p = gc.plan(fake.cfg, keep_runs=1, now=FUTURE, settle=0)
    assert p.in_progress == ["starting", "busy"] and p.kept_runs == ["done-2"]
    # Between two nodes every execution of a running run is finished: a run that changed
    # within `settle` seconds counts as in progress too.
    quiet = gc.plan(fake.cfg, keep_runs=1, settle=3600)
    assert len(quiet.in_progress) == len(quiet.runs) == 4 and quiet.delete == []


def test_a_dry_run_deletes_nothing_and_yes_deletes_and_marks(fake, day, capsys, monkeypatch):
    monkeypatch.setattr(gc, "SETTLE_SECONDS", 0.0)  # the runs were written just now
    args = ["--output", str(fake.cfg.output_dir), "--keep-runs", "1"]
    files = sorted(str(p) for p in fake.cfg.output_dir.rglob("*"))
    p = gc.plan(fake.cfg, keep_runs=1, now=FUTURE, settle=0)
    assert cli.main(["gc", *args, "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and dry["deleted"] is None
    assert sorted(str(p) for p in fake.cfg.output_dir.rglob("*")) == files
    assert all(fake.state(c.id) == mlmd.Artifact.LIVE for c in p.delete)

    result = gc.collect(fake.cfg, p)
    assert {c.id for c in result.deleted} == {c.id for c in p.delete} and not result.skipped
    for c in p.delete:
        assert fake.state(c.id) == mlmd.Artifact.DELETED and not os.path.exists(c.uri)
    for id_ in p.why:
        assert fake.state(id_) == mlmd.Artifact.LIVE and os.path.exists(fake.uri(id_))
    assert result.disk_bytes == p.disk_bytes - 1000 * len(p.delete)
    again = gc.plan(fake.cfg, keep_runs=1, now=FUTURE, settle=0)
    assert again.delete == [] and again.already_deleted == len(p.delete)

    assert cli.main(["gc", *args]) == 0  # the table
    out = capsys.readouterr().out
    assert "a dry run, nothing deleted" in out and "alias production" in out
    assert "pipeline root on disk" in out and "metadata store" in out


def test_nothing_outside_the_pipeline_root_is_ever_deleted(fake, tmp_path):
    """Old artifacts whose URI leaves the root (another folder, a link out of it, the root
    itself, a remote URI) or holds a kept artifact stay, files and state."""
    outside = tmp_path / "elsewhere" / "examples"
    outside.mkdir(parents=True)
    (outside / "data").write_text("keep me")
    link = fake.cfg.pipeline_root / "Linked" / "examples" / "1"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    old = fake.new_run("old")
    ids = {}
    for uri in (outside, link, fake.cfg.pipeline_root, "gs://bucket/examples/1",
                fake.cfg.pipeline_root / "Nested"):
        [aid] = fake.s.put_artifacts([mlmd.Artifact(
            type_id=fake.s.put_artifact_type(mlmd.ArtifactType(name="Examples")),
            uri=str(uri), state=mlmd.Artifact.LIVE)])
        ids[str(uri)] = aid
        [a] = fake.s.get_artifacts_by_id([aid])
        exec_id = fake.s.put_executions([mlmd.Execution(type_id=fake.exec_type)])[0]
        fake.s.put_execution(fake.s.get_executions_by_id([exec_id])[0],
                             [(a, event(mlmd.Event.OUTPUT, "examples"))], [fake.pipeline, old])
    nested = fake.cfg.pipeline_root / "Nested" / "model" / "1"  # inside the folder above
    (fake.cfg.pipeline_root / "Nested").mkdir()
    new = fake.new_run("new")
    fake.node(new, "Trainer", {}, {"model": "Model"})
    [kept_model] = fake.s.get_artifacts_by_type("Model")
    shutil.move(kept_model.uri, nested)
    kept_model.uri = str(nested)
    fake.s.put_artifacts([kept_model])

    p = gc.plan(fake.cfg, keep_runs=1, now=FUTURE, settle=0)
    assert p.delete == []
    assert {p.why[ids[str(u)]] for u in (outside, fake.cfg.pipeline_root,
                                          "gs://bucket/examples/1")} == {gc.OUTSIDE}
    assert p.why[ids[str(link)]] == gc.LINK
    assert p.why[ids[str(fake.cfg.pipeline_root / "Nested")]] == gc.HOLDS_KEPT
    gc.collect(fake.cfg, p)
    assert (outside / "data").read_text() == "keep me" and link.is_symlink() and nested.exists()
    assert {fake.state(i) for i in ids.values()} == {mlmd.Artifact.LIVE}


def test_a_run_started_after_the_plan_keeps_what_it_took(fake, day):
    p = gc.plan(fake.cfg, keep_runs=1, now=FUTURE, settle=0)
    taken = day["r1"]["examples"]
    assert taken in {c.id for c in p.delete}
    late = fake.new_run("late")  # a cache hit on r1's examples, after the plan
    fake.node(late, "CsvExampleGen", {}, {"examples": taken}, mlmd.Execution.CACHED)
    result = gc.collect(fake.cfg, p)
    assert [c.id for c, _ in result.skipped] == [taken]
    assert fake.state(taken) == mlmd.Artifact.LIVE and os.path.exists(fake.uri(taken))
    assert len(result.deleted) == len(p.delete) - 1


def test_gc_arguments(cfg, capsys):
    assert store_cmd.parse_age("30d") == 30 * 86400
    assert store_cmd.parse_age("12h") == 12 * 3600 and store_cmd.parse_age("1.5w") == 1.5 * 604800
    for bad in (["--keep-runs", "0"], ["--older-than", "30"], ["--older-than", "0d"],
                ["--older-than", "3x"]):
        with pytest.raises(SystemExit) as e:
            cli.main(["gc", "--output", str(cfg.output_dir), *bad])
        assert e.value.code == 2
    assert "expected" in capsys.readouterr().err


# --- backup and restore (SQLite) --------------------------------------------------------------

def test_backup_then_restore_into_an_empty_store(fake, day, tmp_path, capsys):
    out = ["--output", str(fake.cfg.output_dir)]
    assert cli.main(["metadata", "backup", *out, "--to", str(tmp_path / "b")]) == 0
    assert "backed up" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "b" / store_backup.MANIFEST).read_text())
    counts = store_backup.facts(fake.cfg)["counts"]
    assert manifest["counts"] == counts and counts["artifacts"] > 30
    assert (manifest["pipeline"], manifest["backend"], manifest["pipelines"]) == (
        "fairway-census", "sqlite", ["fairway-census"])
    assert manifest["schema_version"] == store_backup.library_schema_version()

    empty = config.preset("census", output_dir=tmp_path / "restored")
    target = ["--output", str(empty.output_dir)]
    assert cli.main(["metadata", "restore", str(tmp_path / "b"), *target]) == 0
    assert "restored" in capsys.readouterr().out
    before, after = fake.s, metadata.store(empty)
    assert [a.uri for a in after.get_artifacts()] == [a.uri for a in before.get_artifacts()]
    assert registry.Registry(empty).aliases() == {"production": day["r2"]["version"]}

    # Not onto a store that is not empty, unless --force.
    assert cli.main(["metadata", "restore", str(tmp_path / "b"), *target]) == 1
    assert "not empty" in capsys.readouterr().err
    assert cli.main(["metadata", "restore", str(tmp_path / "b"), *target, "--force"]) == 0


def test_restore_refuses_another_pipeline_a_damaged_file_and_another_backend(fake, day,
                                                                              tmp_path, capsys):
    m = store_backup.backup(fake.cfg, tmp_path / "b")
    taxi = ["--dataset", "taxi", "--output", str(tmp_path / "taxi")]
    assert cli.main(["metadata", "restore", m["path"], *taxi]) == 1
    err = capsys.readouterr().err
    assert "pipeline 'fairway-census'" in err and "'fairway-taxi'" in err
    assert "Traceback" not in err and not (tmp_path / "taxi" / "metadata.sqlite").exists()

    target = ["--output", str(tmp_path / "restored")]
    data = tmp_path / "b" / "metadata.sqlite"
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "b", damaged)
    with (damaged / data.name).open("ab") as f:
        f.write(b"\0")
    assert cli.main(["metadata", "restore", str(damaged), *target]) == 1
    assert "checksum" in capsys.readouterr().err

    other = json.loads((tmp_path / "b" / store_backup.MANIFEST).read_text())
    other["backend"] = "mysql"
    (damaged / store_backup.MANIFEST).write_text(json.dumps(other))
    (damaged / data.name).write_bytes(data.read_bytes())
    assert cli.main(["metadata", "restore", str(damaged), *target]) == 1
    assert "same kind" in capsys.readouterr().err
    assert cli.main(["metadata", "restore", str(tmp_path / "nothing"), *target]) == 1
    assert "not a Fairway metadata backup" in capsys.readouterr().err
    assert not (tmp_path / "restored" / "metadata.sqlite").exists()
