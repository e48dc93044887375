"""`fairway rollout` end to end: a real trained run, a real `fairway serve --registry` under
bounded load on 127.0.0.1, and versions built from the pushed model: a good one (a small
uniform shift, as a retrain gives) promoted through every canary step with no failed request,
a +2-logit-for-one-group one and an erroring one rolled back with the failing check named.

Select with `-m e2e`. The trained run is the session's (tests/e2e_support.py), copied.
"""
import argparse
import json
import time

import e2e_support
import pytest
import release_support as support

from release import registry as registry_lib
from release import rollout as rollout_lib
from release.rollout import STRATEGIES, Server
from runners import cli, rollout_cmd
from runners.serve_process import serve
from serving import client

pytestmark = pytest.mark.e2e
RATE = 50  # requests per second of bounded load, on loopback
MIN = "100"  # --min-requests: per arm (half of it per group of the sensitive feature)
# Short steps keep the file quick: each lasts a few seconds plus the time to gather its traffic.
FAST = ["--step-seconds", "3", "--step-timeout", "60", "--min-requests", MIN]


@pytest.fixture(scope="module")
def trained(census_config, census_run, tmp_path_factory):
    """A copy of the session's trained run (e2e_support): rollouts write to its registry."""
    out = tmp_path_factory.mktemp("rollout") / "run"
    return census_config, e2e_support.copy_run(census_run, census_config, out)


@pytest.fixture(scope="module")
def deployment(trained, tmp_path_factory):
    """Production = the pushed version; three more versions built from it; the server."""
    path, cfg = trained
    reg = registry_lib.Registry(cfg)
    [pushed] = [v.number for v in reg.versions() if v.blessed]
    if reg.aliases().get("production") != pushed:
        reg.promote(pushed, "production", by="test", reason="the run's pushed model")
    src = cfg.model_base_dir / str(pushed)
    [sample] = cfg.input_dir.glob("sample-*")
    # With the label: the load sends only the signature's inputs; the labels "arrive" later.
    rows = support.eval_rows(next((sample / "eval").glob("*.csv")), 1000)
    numeric = cfg.dataset.numeric[0]
    above = support.quantile(rows, numeric, 0.85)
    versions = {"good": support.shifted(src, pushed + 1, 0.1),
                "group": support.shifted(src, pushed + 2, 2.0, cfg.dataset.sensitive,
                                         cfg.dataset.groups[0]),
                "errors": support.failing(src, pushed + 3, numeric, above)}
    versions = {k: int(v.name) for k, v in versions.items()}
    logs = tmp_path_factory.mktemp("request-logs")
    run_dir = tmp_path_factory.mktemp("serve")
    with serve(run_dir, "--config", str(path), "--output", str(cfg.output_dir), "--registry",
               "--request-log-dir", str(logs), "--log-sampling-rate", "1") as server:
        types = client.Client(port=server.rest_port, model=cfg.model_name).inputs()
        yield dict(cfg=cfg, path=path, server=server, rows=rows, types=types, logs=logs,
                   versions=versions, pushed=pushed, reports=tmp_path_factory.mktemp("reports"),
                   share=sum(float(r[numeric]) > above for r in rows) / len(rows))


def rollout(d, version: int, *extra: str) -> tuple[int, dict]:
    p = argparse.ArgumentParser()
    rollout_cmd.add_rollout_parser(p.add_subparsers(dest="command"), cli._add_config_args)
    args = p.parse_args(["rollout", str(version), "--config", str(d["path"]), "--output",
                         str(d["cfg"].output_dir), "--server", d["server"].url, "--logs",
                         str(d["logs"]), "--to", str(d["reports"]), "--force", *extra])
    before = set(d["reports"].glob(f"rollout-{version}-*.json"))
    code = rollout_cmd.rollout(d["cfg"], args)
    [report] = set(d["reports"].glob(f"rollout-{version}-*.json")) - before
    assert report.with_suffix(".html").read_text().startswith("<!doctype html>")
    return code, json.loads(report.read_text())


def load(d, **kw) -> support.Load:
    return support.Load(d["server"].rest_port, d["cfg"].model_name, d["rows"], d["types"],
                        rate=RATE, threads=4, **kw)


def labels(d, traffic: support.Load) -> support.Labels:
    label = d["cfg"].dataset.label
    return support.Labels(traffic, d["reports"] / "labels.csv",
                          lambda i: int(d["rows"][i][label]))


def aliases(d) -> dict[str, int]:
    return registry_lib.Registry(d["cfg"]).aliases()


def test_a_good_version_is_promoted_through_every_step_without_a_failed_request(deployment):
    d, good = deployment, deployment["versions"]["good"]
    with load(d) as traffic, labels(d, traffic) as arrived:
        code, report = rollout(d, good, "--steps", "25,50,100", "--labels", str(arrived.path),
                               *FAST)
        time.sleep(1.0)  # requests on the way while the canary alias goes
    assert code == 0, report["reasons"]
    assert report["decision"] == "promoted"
    assert [s["name"] for s in report["steps"]] == ["canary 25%", "canary 50%", "canary 100%"]
    for step in report["steps"]:
        verdicts = {r["check"]: r["verdict"] for r in step["rows"]}
        # Label checks may lack labels at the early steps (not required); the rest pass.
        assert set(verdicts.values()) <= {"pass", "insufficient"}, step["rows"]
        assert {v for k, v in verdicts.items() if "AUC" not in k and "FPR" not in k} \
            == {"pass"}, (step["name"], step["rows"])
        assert "prediction shift in sex=Female" in verdicts
    last = {r["check"]: r for r in report["steps"][-1]["rows"]}
    assert last["AUC"]["n_canary"] >= 200 and last["AUC"]["canary"] > 0.75
    assert traffic.failed == 0, traffic.errors
    assert traffic.versions.get(good, 0) > 100
    now = aliases(d)
    assert now["production"] == good and "canary" not in now
    history = registry_lib.Registry(d["cfg"]).history()
    steps = [c for c in history if c.alias == "canary" and c.version == good]
    assert [c.fraction for c in steps[-3:]] == [0.25, 0.5, 1.0]
    assert history[-2].alias == "production" and history[-2].by == "fairway rollout (canary)"
    assert history[-2].reason.startswith("canary passed 3 steps")


# The +2-logits-for-one-group version is rolled back in tests/test_release_day.py (step 3).
@pytest.mark.parametrize("kind, check", [("errors", "error rate")])
def test_a_bad_version_is_rolled_back_naming_the_failing_check(deployment, kind, check):
    d, version = deployment, deployment["versions"][kind]
    production = aliases(d)["production"]
    with load(d) as traffic:
        # 75 rows per group: +2 logits is then caught at KS ~0.5 with room to spare (at the
        # Bonferroni level of ~0.0017 the critical KS for 75 vs 75 rows is ~0.31).
        code, report = rollout(d, version, "--steps", "50,100", *FAST[:-1], "150")
    assert code == 1 and report["decision"] == "rolled back"
    [step] = report["steps"]  # stopped at the first step
    failed = {r["check"]: r for r in step["rows"] if r["verdict"] == "fail"}
    assert check in failed, step["rows"]
    assert any(reason.startswith(f"canary 50%: ") and check in reason
               for reason in report["reasons"])
    now = aliases(d)
    assert now["production"] == production and "canary" not in now
    removal = registry_lib.Registry(d["cfg"]).history("canary")[-1]
    assert removal.version is None and check in removal.reason
    if kind == "errors":
        row = failed[check]
        assert row["canary"] > 0.05 and row["production"] == 0
        assert traffic.failed > 0  # the canary's errors reached clients until it was removed
    else:
        assert float(failed[check]["statistic"].split()[1]) > 0.15
        assert traffic.failed == 0, traffic.errors
    print(f"\n{kind}: {report['reasons']}")


def test_no_traffic_rolls_back_by_the_timeout(deployment):
    d = deployment
    code, report = rollout(d, d["versions"]["good"] if aliases(d)["production"] !=
                           d["versions"]["good"] else d["pushed"], "--steps", "100",
                           "--step-seconds", "1", "--step-timeout", "3")
    assert code == 1 and report["decision"] == "rolled back"
    assert "not enough traffic" in report["reasons"][0]
    assert "canary" not in aliases(d)


def test_blue_green_switches_with_the_old_version_loaded_and_rolls_back_instantly(deployment):
    d = deployment
    reg = registry_lib.Registry(d["cfg"])
    old = reg.aliases()["production"]
    new = d["pushed"] if old != d["pushed"] else d["versions"]["good"]
    with load(d) as traffic:
        code, report = rollout(d, new, "--strategy", "blue-green")
        assert code == 0 and report["decision"] == "promoted"
        assert reg.aliases()["production"] == new and "candidate" not in reg.aliases()
        states = Server(d["server"].url, d["cfg"].model_name).states()
        assert states[old] == "AVAILABLE" and states[new] == "AVAILABLE"
        # The old version is still loaded: a rollback is a switch. Measured, not asserted.
        started = time.monotonic()
        reg.rollback("production", by="test", reason="blue-green rollback")
        answered = None
        c = client.Client(port=d["server"].rest_port, model=d["cfg"].model_name)
        while time.monotonic() - started < 30:
            if c.predict(d["rows"][:1]).version == old:
                answered = time.monotonic() - started
                break
            time.sleep(0.05)
        c.close()
    assert answered is not None
    print(f"\nblue-green rollback {new} -> {old}: served by {old} after {answered:.2f} s")
    assert traffic.failed == 0, traffic.errors
    assert reg.aliases()["production"] == old


def test_shadow_compares_without_promoting(deployment):
    d = deployment
    production = aliases(d)["production"]
    with load(d):
        code, report = rollout(d, d["versions"]["group"], "--strategy", "shadow",
                               "--step-seconds", "8", "--min-requests", MIN)
    assert code == 0 and report["decision"] == "completed"
    [step] = report["steps"]
    rows = {r["check"]: r for r in step["rows"]}
    assert rows["decision flips"]["n_canary"] >= 100
    assert rows["prediction shift in sex=Female"]["verdict"] == "fail"
    assert rows["shadow error rate"]["verdict"] == "pass"
    now = aliases(d)
    assert now["production"] == production and "shadow" not in now


def test_ab_compares_the_arms_once_labelled_and_keeps_production(deployment):
    d = deployment
    production = aliases(d)["production"]
    challenger = d["pushed"] if production != d["pushed"] else d["versions"]["good"]
    with load(d) as traffic, labels(d, traffic) as arrived:
        code, report = rollout(d, challenger, "--strategy", "ab", "--labels", str(arrived.path),
                               "--step-seconds", "5", "--step-timeout", "60", "--min-requests",
                               MIN)
    assert code == 0 and report["decision"] == "completed", report["reasons"]
    rows = {r["check"]: r for r in report["steps"][0]["rows"]}
    for check in ("accuracy", "AUC (two-sided)"):
        assert rows[check]["verdict"] == "pass"
        assert min(rows[check]["n_canary"], rows[check]["n_production"]) >= 200
    assert traffic.versions.get(challenger, 0) > 100 and traffic.versions.get(production, 0) > 100
    now = aliases(d)
    assert now["production"] == production and "challenger" not in now


def test_a_rollout_stopped_half_way_removes_its_canary(deployment):
    d = deployment
    production = aliases(d)["production"]
    version = d["versions"]["group"]

    class Gone(Server):
        """The real server until the canary's first step starts, then unreachable."""
        calls = 0

        def metrics(self):
            Gone.calls += 1
            if Gone.calls > 1:
                raise rollout_lib.RolloutError(f"server {self.url}: gone")
            return super().metrics()

    opts = rollout_lib.Options(version, steps=(1.0,), step_seconds=1, logs=str(d["logs"]),
                               to=str(d["reports"]), force=True)
    runner = rollout_lib.Rollout(d["cfg"], opts, server=Gone(d["server"].url,
                                                             d["cfg"].model_name))
    with pytest.raises(rollout_lib.RolloutError, match="gone"):
        runner.run()
    now = aliases(d)
    assert "canary" not in now and now["production"] == production
    last = registry_lib.Registry(d["cfg"]).history("canary")[-1]
    assert last.version is None and last.reason.startswith("rollout stopped: RolloutError")


def test_usage_errors_exit_2(deployment, capsys):
    d = deployment
    p = argparse.ArgumentParser()
    rollout_cmd.add_rollout_parser(p.add_subparsers(dest="command"), cli._add_config_args)
    for extra in (["--steps", "50,25"], ["--steps", "5,25"]):
        args = p.parse_args(["rollout", "1", "--config", str(d["path"]), *extra])
        assert rollout_cmd.rollout(d["cfg"], args) == 2
    args = p.parse_args(["rollout", "999", "--config", str(d["path"])])
    assert rollout_cmd.rollout(d["cfg"], args) == 2
    err = capsys.readouterr().err
    assert "--steps '50,25'" in err and "unknown version 999" in err
    assert rollout_cmd.STRATEGIES == STRATEGIES


def test_both_arms_cover_the_same_seconds_unless_production_has_stopped():
    """A version's request log can be flushed later than the other's: the arms are cut to the
    earlier last second, so a stretch of traffic only one arm's log holds is not compared."""
    import pandas as pd

    frame = pd.DataFrame({"_version": [1] * 6 + [2] * 11,
                          "_time": list(range(100, 106)) + list(range(100, 111)),
                          "_prediction": [0.1] * 17})
    canary, production = rollout_lib.Rollout._arms(frame, 1, 2, since=100)
    assert len(canary) == 6 and production["_time"].max() == 105 and len(production) == 6
    # A 100 % step: production answers nothing any more, so nothing is cut.
    canary, production = rollout_lib.Rollout._arms(frame, 1, 2, since=100, align=False)
    assert len(canary) == 6 and len(production) == 11
    # Since: rows before the step are not the step's.
    canary, production = rollout_lib.Rollout._arms(frame, 1, 2, since=103)
    assert list(canary["_time"]) == [103, 104, 105] == list(production["_time"])
