"""The model registry in ML Metadata, its commands, and `fairway serve --registry` following it
live. Versions are real SavedModels recorded in a real MLMD store the way TFX's Pusher records
them (a PushedModel output of an execution in a pipeline_run context of the pipeline)."""
import json
import multiprocessing
import time
import urllib.request

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd

import serving_support as support
from pipeline import config, metadata
from release import registry
from runners import cli
from serving import routing

ROW = {"x": [1.0, 2.0], "n": 0, "s": "a"}  # y = 3 * weight


def push(cfg, number: int, weight: float = 1.0, run: str = "run-1", blessed: bool = True):
    """A SavedModel version folder; with `blessed`, recorded as TFX's Pusher records a push."""
    cfg.model_base_dir.mkdir(parents=True, exist_ok=True)
    support.toy_model(cfg.model_base_dir / str(number), weight)
    if not blessed:
        return
    s = metadata_store.MetadataStore(metadata.connection_config(cfg))
    types = {name: s.put_context_type(mlmd.ContextType(name=name))
             for name in ("pipeline", "pipeline_run", "node")}
    pushed_type = s.put_artifact_type(mlmd.ArtifactType(name="PushedModel"))
    pusher_type = s.put_execution_type(mlmd.ExecutionType(name="tfx.components.pusher.Pusher"))

    def context(kind, name):
        found = s.get_context_by_type_and_name(kind, name)
        if found:
            return found
        [cid] = s.put_contexts([mlmd.Context(type_id=types[kind], name=name)])
        return s.get_contexts_by_id([cid])[0]

    pipeline, run_ctx = context("pipeline", cfg.pipeline_name), context("pipeline_run", run)
    s.put_parent_contexts([mlmd.ParentContext(child_id=run_ctx.id, parent_id=pipeline.id)]) \
        if not s.get_parent_contexts_by_context(run_ctx.id) else None
    a = mlmd.Artifact(type_id=pushed_type, uri=str(cfg.model_base_dir / str(number)))
    a.custom_properties["pushed"].int_value = 1
    a.custom_properties["pushed_destination"].string_value = str(cfg.model_base_dir / str(number))
    a.custom_properties["pushed_version"].string_value = str(number)
    s.put_execution(mlmd.Execution(type_id=pusher_type, last_known_state=mlmd.Execution.COMPLETE),
                    [(a, mlmd.Event(type=mlmd.Event.OUTPUT))], [pipeline, run_ctx])


@pytest.fixture
def cfg(tmp_path):
    return config.preset("census", output_dir=tmp_path / "out")


@pytest.fixture
def three(cfg):
    for n, run in ((1, "run-1"), (2, "run-2"), (3, "run-3")):
        push(cfg, n, weight=float(n), run=run)
    return registry.Registry(cfg)


def test_versions_come_from_the_pushers_records_with_their_run(three, cfg):
    push(cfg, 9, blessed=False)  # a folder placed by hand
    vs = {v.number: v for v in three.versions()}
    assert sorted(vs) == [1, 2, 3, 9]
    assert (vs[2].run, vs[2].blessed) == ("run-2", True)
    assert (vs[9].run, vs[9].blessed) == (None, False)


def test_promotions_are_recorded_with_who_why_and_from_which_version(three, cfg):
    three.promote(1, "production", by="ana", reason="first")
    change = three.promote(2, "production", by="bo", reason="better auc")
    assert (change.previous, change.version, change.by, change.reason) == (1, 2, "bo",
                                                                           "better auc")
    assert three.aliases() == {"production": 2}
    assert [(c.alias, c.previous, c.version) for c in three.history()] == [
        ("production", None, 1), ("production", 1, 2)]
    # The change's input is the version's PushedModel artifact: lineage in MLMD.
    events = three.store.get_events_by_execution_ids([change.id])
    [v2] = [v for v in three.versions() if v.number == 2]
    assert [(e.artifact_id, e.type) for e in events] == [(v2.artifact_id, mlmd.Event.INPUT)]
    # The routing file keeps production's rollback target loaded.
    r = routing.load(str(registry.routing_path(cfg)))
    assert (r.versions, r.labels) == ((1, 2), {"production": 2})


def test_each_rollback_goes_one_holder_further_back(three):
    for n in (1, 2, 3):
        three.promote(n, "production")
    assert three.rollback().version == 2
    assert three.rollback().version == 1
    with pytest.raises(registry.RegistryError, match="no previous holder"):
        three.rollback()
    assert [c.action for c in three.history()][-2:] == ["rollback", "rollback"]


def test_canary_share_and_removal(three, cfg):
    three.promote(1, "production")
    three.promote(3, "canary", fraction=0.25)
    r = routing.load(str(registry.routing_path(cfg)))
    assert r.labels == {"production": 1, "canary": 3} and r.fractions == {"canary": 0.25}
    three.remove("canary", reason="ended")
    assert routing.load(str(registry.routing_path(cfg))).fractions == {}
    with pytest.raises(registry.RegistryError, match="'canary' is not set"):
        three.remove("canary")


@pytest.mark.parametrize("call, message", [
    (lambda r: r.promote(42, "production"), r"unknown version 42; the registered versions are "
                                            r"\[1, 2, 3\]"),
    (lambda r: r.promote(1, "Prod!"), "alias 'Prod!': expected lower-case"),
    (lambda r: r.promote(1, "production", fraction=0.5), "traffic share applies to canary"),
    (lambda r: r.promote(1, "canary", fraction=1.5), "expected more than 0, up to 1"),
    (lambda r: r.rollback("canary"), "'canary' has no previous holder"),
    (lambda r: r.approve(1, reason="ok"), "version 1 is not waiting for approval"),
    (lambda r: r.approve(1), "needs a --reason"),
])
def test_bad_changes_are_clear_errors_and_record_nothing(three, call, message):
    with pytest.raises(registry.RegistryError, match=message):
        call(three)
    assert three.history() == []


def test_an_unblessed_version_needs_force_and_a_reason_to_take_live_traffic(three, cfg):
    push(cfg, 9, blessed=False)
    for kwargs in ({}, {"force": True}, {"reason": "hotfix"}):
        with pytest.raises(registry.RegistryError, match="version 9 is not blessed"):
            three.promote(9, "production", **kwargs)
    three.promote(9, "shadow")  # a shadow answers nobody
    change = three.promote(9, "production", force=True, reason="hotfix, evaluated by hand")
    assert three.aliases()["production"] == 9 and change.reason.startswith("hotfix")
    # Lineage for a folder placed by hand too: an artifact of its own.
    [event] = three.store.get_events_by_execution_ids([change.id])
    [art] = three.store.get_artifacts_by_id([event.artifact_id])
    assert art.uri == str(cfg.model_base_dir / "9")


def test_manual_policy_waits_for_approval(three):
    three.after_push(1, "auto", run="run-1")
    three.after_push(2, "manual", run="run-2")
    assert three.aliases() == {"production": 1, "candidate": 2}
    change = three.approve(2, by="lead", reason="reviewed the card")
    assert (change.action, change.by) == ("approve", "lead")
    assert three.aliases() == {"production": 2}


def test_a_stale_concurrent_promotion_loses_with_a_conflict_error(three, cfg):
    other = registry.Registry(cfg)  # a second process's view, read before the first wrote
    stale, fresh = other.history(), other.history

    other.history = lambda alias=None: stale if alias in (None, "production") else fresh(alias)
    three.promote(1, "production", by="first")
    with pytest.raises(registry.ConflictError, match="changed at the same time by first"):
        other.promote(2, "production", by="second")
    assert three.aliases() == {"production": 1}
    assert [c.by for c in registry.Registry(cfg).history()] == ["first"]


def _race(path: str, output: str, version: int, barrier, results) -> None:
    cfg = config.preset("census", output_dir=output)
    reg = registry.Registry(cfg)
    barrier.wait()
    try:
        reg.promote(version, "production", by=f"p{version}")
        results.put((version, "ok"))
    except registry.ConflictError:
        results.put((version, "conflict"))


def test_racing_promotions_from_processes_leave_one_consistent_history(three, cfg):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_race, args=("", str(cfg.output_dir), n, barrier, results))
             for n in (1, 2, 3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    outcome = dict(results.get(timeout=5) for _ in procs)
    winners = [n for n, r in outcome.items() if r == "ok"]
    history = registry.Registry(cfg).history()
    assert sorted(c.version for c in history) == sorted(winners)  # every win, no loser
    assert [c.seq for c in history] == list(range(1, len(history) + 1))
    assert registry.Registry(cfg).aliases() == {"production": history[-1].version}


def test_commands_print_models_history_and_errors(three, cfg, capsys):
    base = ["--output", str(cfg.output_dir)]
    assert cli.main(["promote", "1", "--to", "production", "--reason", "go", *base]) == 0
    assert "production: - -> 1" in capsys.readouterr().out
    assert cli.main(["promote", "2", "--to", "canary", "--fraction", "0.05", *base]) == 0
    assert cli.main(["rollback", "canary", *base]) == 0
    capsys.readouterr()
    assert cli.main(["models", "--json", *base]) == 0
    rows = {r["version"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows[1]["aliases"] == ["production"] and rows[1]["run"] == "run-1"
    assert cli.main(["history", "--json", *base]) == 0
    trail = json.loads(capsys.readouterr().out)
    assert [(c["alias"], c["action"], c["version"]) for c in trail] == [
        ("production", "promote", 1), ("canary", "promote", 2), ("canary", "rollback", None)]
    assert cli.main(["promote", "77", "--to", "production", *base]) == 1
    assert "unknown version 77" in capsys.readouterr().err


def routed(server, model="census"):
    with urllib.request.urlopen(server.url + "/v1/routing", timeout=10) as r:
        return json.loads(r.read())[model]


def predict_version(server, model="census") -> int:
    req = urllib.request.Request(server.url + f"/v1/models/{model}:predict", method="POST",
                                 data=json.dumps({"instances": [ROW]}).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        return int(r.headers["X-Model-Version"])


def wait(cond, server, timeout=120.0):
    """A hang guard, not a timing assertion (the latency is `make bench-release`'s)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out; the server said:\n{server.output()}"
        time.sleep(0.05)


def test_serve_registry_follows_promotions_and_rollbacks_live(three, cfg, tmp_path):
    three.promote(1, "production")
    three.promote(2, "production")  # 1 stays loaded: the rollback target
    three.promote(3, "shadow")
    with support.serve(tmp_path, "--output", str(cfg.output_dir), "--registry",
                       "--request-log-dir", str(tmp_path / "logs"),
                       "--log-sampling-rate", "1") as server:
        wait(lambda: routed(server)["labels"] == {"production": 2, "shadow": 3}, server)
        assert predict_version(server) == 2
        started = time.monotonic()
        three.rollback(reason="drill")
        wait(lambda: predict_version(server) == 1, server)
        latency = time.monotonic() - started
        assert routed(server)["labels"]["production"] == 1
        # The canary takes its share of unpinned traffic.
        three.promote(3, "canary", fraction=1.0)
        wait(lambda: predict_version(server) == 3, server)
        three.remove("canary")
        wait(lambda: predict_version(server) == 1, server)
    print(f"rollback reached traffic in {latency:.2f} s")
    # The shadow's copies were logged.
    assert list((tmp_path / "logs").glob("shadow-*"))


def test_a_change_made_while_the_server_is_down_applies_on_start(three, cfg, tmp_path):
    three.promote(1, "production")
    registry.routing_path(cfg).unlink()  # lost too: the server rebuilds it from MLMD
    with support.serve(tmp_path, "--output", str(cfg.output_dir), "--registry") as server:
        assert predict_version(server) == 1, server.output()
    three.promote(3, "production", reason="while down")
    registry.routing_path(cfg).unlink()
    with support.serve(tmp_path, "--output", str(cfg.output_dir), "--registry") as server:
        assert predict_version(server) == 3, server.output()


def test_serve_registry_refuses_flags_it_would_ignore(cfg, capsys):
    assert cli.main(["serve", "--output", str(cfg.output_dir), "--registry",
                     "--canary-fraction", "0.5"]) == 2
    assert "--registry routes by the registry's aliases" in capsys.readouterr().err


def test_deploy_writes_the_aliases_and_a_change_rewrites_it(three, cfg):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from runners import deploy

    three.promote(1, "production")
    three.promote(2, "production")
    path = deploy.write(cfg)["models.config"]

    def parsed():
        msg = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
        [m] = msg.model_config_list.config
        return m.base_path, sorted(m.model_version_policy.specific.versions), \
            dict(m.version_labels)

    assert parsed() == ("/models/census", [1, 2], {"production": 2})
    three.rollback()
    assert parsed() == ("/models/census", [1], {"production": 1})


@pytest.mark.parametrize("policy, aliases, said", [
    ("auto", {"production": 2}, "version 2 is in production (push policy auto; `fairway "
                                "rollback` returns to 1)"),
    ("manual", {"production": 1, "candidate": 2}, "`fairway approve 2 --reason ...`"),
    ("canary", {"production": 1, "candidate": 2}, "`fairway rollout 2` steps it through 5%, "
                                                  "25%, 50%, 100%"),
])
def test_the_push_policy_applies_once_to_the_version_a_run_pushed(cfg, policy, aliases, said):
    import dataclasses

    from runners import release_cmd

    push(cfg, 1, run="run-1")
    registry.Registry(cfg).promote(1, "production")
    time.sleep(0.01)  # run-2 is the newer run context
    push(cfg, 2, run="run-2")
    cfg = dataclasses.replace(cfg, release=config.ReleaseConfig(push_policy=policy))
    assert said in release_cmd.after_run(cfg)
    assert registry.Registry(cfg).aliases() == aliases
    assert release_cmd.after_run(cfg) is None  # a re-run whose Pusher was cached: nothing new
    [change] = [c for c in registry.Registry(cfg).history() if c.action == "push"]
    assert change.by == "fairway run" and change.reason == f"push policy {policy}: pushed by " \
                                                          "run run-2"
