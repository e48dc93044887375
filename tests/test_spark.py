"""`fairway run --runner spark`: the option checks, the errors that name their fix, and a real
run on a local standalone Spark cluster (master, worker, Beam job server and worker pool started
and stopped by the runner) on a small sample."""
import http.server
import os
import pathlib
import shutil
import socket
import signal
import subprocess
import threading
import time

import pytest

from pipeline import artifacts, config, metadata
from runners import cli, engine_jobs, spark, spark_cluster

REPO = pathlib.Path(__file__).resolve().parent.parent
BEAM_NODES = ("CsvExampleGen", "StatisticsGen", "Transform", "Evaluator")

NEEDS_JAVA = pytest.mark.skipif(shutil.which("java") is None,
                                reason="needs Java 17 on PATH (Spark)")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def our_processes(marker: str) -> list[str]:
    """Command lines of live processes that mention `marker` (a run's own log folder)."""
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmd:
            found.append(cmd[:200])
    return found


@pytest.mark.parametrize("kwargs, message", [
    ({"master": "localhost:7077"}, "spark://HOST:PORT"),
    ({"worker_pool": "http://x:1"}, "HOST:PORT"),
    ({"timeout": 0}, "positive"),
])
def test_options_are_checked(kwargs, message):
    with pytest.raises(config.ConfigError, match=message):
        spark.SparkOptions(**kwargs)


def test_beam_job_names_are_valid_dataflow_names_and_name_the_node():
    cfg = config.preset("census")
    assert cfg.beam_job_name("StatisticsGen") == "fairway-census-statisticsgen"
    assert cfg.beam_job_name("Some_Node.x") == "fairway-census-some-node-x"


def test_the_record_a_spark_run_writes_is_read_back_onto_its_nodes(tmp_path):
    cfg = config.preset("census", output_dir=tmp_path)
    app = {"id": "app-7", "name": cfg.beam_job_name("Transform") + "_9f", "state": "FINISHED",
           "starttime": 5, "duration": 1000, "cores": 2}
    engine_jobs.record(cfg, "run-7", "spark", "spark://127.0.0.1:7077", [app])
    summary = engine_jobs.attach(cfg, {"run_id": "run-7", "nodes": [
        {"node": "Transform"}, {"node": "TeacherTrainer"}]})
    assert summary["engine"] == {"name": "spark", "master": "spark://127.0.0.1:7077"}
    assert summary["nodes"] == [{"node": "Transform", "spark_applications": [app]},
                                {"node": "TeacherTrainer"}]


def test_spark_logs_and_the_job_server_cache_are_where_the_config_says(tmp_path, monkeypatch):
    cfg = config.preset("census", output_dir=tmp_path)
    log = cfg.log_path("spark")
    assert log.parent == tmp_path / "logs" and log.name.startswith("spark-")
    monkeypatch.setenv("FAIRWAY_CACHE", str(tmp_path / "cache"))
    assert config.cache_dir("spark") == tmp_path / "cache" / "spark"


@pytest.mark.parametrize("argv, message", [
    (["--spark-master", "spark://h:7077"], "--spark-master needs --runner spark"),
    (["--project", "p"], "--project needs --runner dataflow"),
    (["--timeout", "60"], "--timeout needs --runner spark"),
])
def test_runner_flags_need_their_runner(capsys, argv, message):
    assert cli.main(["run", *argv]) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


@NEEDS_JAVA
def test_an_unreachable_master_is_named_with_the_fix(capsys, tmp_path):
    port = closed_port()
    code = cli.main(["run", "--runner", "spark", "--spark-master", f"spark://127.0.0.1:{port}",
                     "--output", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert f"cannot reach the Spark master at spark://127.0.0.1:{port}" in err
    assert "omit --spark-master" in err and "Traceback" not in err


def test_missing_java_is_named_with_the_fix(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    assert cli.main(["run", "--runner", "spark", "--output", str(tmp_path)]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "Java not found" in err and "JDK 17" in err and "JAVA_HOME" in err


class _OldMasterUI(http.server.BaseHTTPRequestHandler):
    """The header of a Spark 3.4.1 standalone master's web page (what the check reads)."""

    def do_GET(self):
        body = (b'<html><head><title>Spark Master at spark://127.0.0.1:7077</title></head>'
                b'<body><h3><span class="version" style="margin-right: 15px;">3.4.1</span>'
                b'Spark Master at spark://127.0.0.1:7077</h3></body></html>')
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@NEEDS_JAVA
def test_a_cluster_of_another_spark_version_is_refused_with_the_fix(capsys, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OldMasterUI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        code = cli.main(["run", "--runner", "spark", "--spark-master",
                         f"spark://127.0.0.1:{port}", "--spark-ui", f"http://127.0.0.1:{port}",
                         "--output", str(tmp_path)])
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert "runs Spark 3.4.1" in err and f"uses Spark {spark_cluster.spark_version()}" in err
    assert "pyspark==3.4.*" in err


def test_a_missing_job_server_jar_is_a_config_error(capsys, tmp_path):
    code = cli.main(["run", "--runner", "spark", "--spark-job-server-jar",
                     str(tmp_path / "nope.jar"), "--output", str(tmp_path)])
    assert code == cli.EXIT_USAGE
    assert "nope.jar is not a file" in capsys.readouterr().err


# --- real Spark -------------------------------------------------------------------------------

def spark_run(out: pathlib.Path, *extra: str) -> int:
    return cli.main(["run", "--runner", "spark", "--sample", "300", "--train-steps", "50",
                     "--no-cache", "--output", str(out), *extra])


@pytest.mark.e2e
def test_a_job_server_that_cannot_start_stops_the_cluster_and_says_why(capsys, tmp_path):
    bad_jar = tmp_path / "beam-runners-spark-3-job-server-2.74.0.jar"
    bad_jar.write_bytes(b"not a jar")
    assert spark_run(tmp_path / "out", "--spark-job-server-jar", str(bad_jar)) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "Beam Spark job server (Beam 2.74.0) exited with code" in err
    assert our_processes(str(tmp_path / "out")) == []


@pytest.fixture
def existing_cluster(tmp_path):
    """A standalone cluster started the way an operator would (bin/spark-class), not by Fairway."""
    home, ports = spark_cluster.spark_home(), [spark_cluster.free_port() for _ in range(3)]
    master, ui = f"spark://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(tmp_path)}
    procs = [subprocess.Popen(
        [str(home / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master", "--host",
         "127.0.0.1", "--port", str(ports[0]), "--webui-port", str(ports[1])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        wait_for(lambda: spark_cluster.master_status(ui)["status"] == "ALIVE")
        procs.append(subprocess.Popen(
            [str(home / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker", "--host",
             "127.0.0.1", "--webui-port", str(ports[2]), "--work-dir", str(tmp_path / "work"),
             master], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))
        wait_for(lambda: spark_cluster.master_status(ui)["aliveworkers"] == 1)
        yield master, ui
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(ready, seconds: float = 120.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("the test's Spark cluster did not start")


@pytest.mark.e2e
def test_on_an_existing_cluster_a_timeout_stops_only_what_fairway_started(
        capsys, tmp_path, existing_cluster):
    master, ui = existing_cluster
    out = tmp_path / "out"
    code = spark_run(out, "--spark-master", master, "--spark-ui", ui, "--timeout", "60")
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert "Spark run timed out after 60s" in err
    assert our_processes(str(out)) == []  # job server and worker pool are gone
    status = spark_cluster.master_status(ui)  # the operator's cluster is still up
    assert status["status"] == "ALIVE" and status["aliveworkers"] == 1
    apps = status["completedapps"] + status["activeapps"]
    assert any(a["name"].startswith("fairway-census-csvexamplegen_") for a in apps), apps


@pytest.fixture(scope="module")
def spark_census(tmp_path_factory):
    out = tmp_path_factory.mktemp("spark")
    assert spark_run(out) == 0
    cfg = config.preset("census", output_dir=out)
    return cfg, engine_jobs.attach(cfg, metadata.run_summary(cfg))


@pytest.mark.e2e
def test_every_node_completes_and_beam_components_ran_as_spark_applications(spark_census):
    cfg, summary = spark_census
    assert {n["node"]: n["state"] for n in summary["nodes"]} == {
        n["node"]: "COMPLETE" for n in summary["nodes"]}
    assert len(summary["nodes"]) == 13
    assert summary["engine"]["name"] == "spark"
    assert summary["engine"]["master"].startswith("spark://127.0.0.1:")
    apps = {n["node"]: n.get("spark_applications", []) for n in summary["nodes"]}
    for node in BEAM_NODES:
        assert len(apps[node]) == 1, (node, apps[node])
        assert apps[node][0]["state"] == "FINISHED" and apps[node][0]["id"].startswith("app-")
        assert apps[node][0]["name"].startswith(cfg.beam_job_name(node) + "_")
    others = [n for n, a in apps.items() if a and n not in BEAM_NODES]
    assert others == []  # trainers and custom components run in-process


@pytest.mark.e2e
def test_the_spark_run_leaves_no_process_or_port_behind(spark_census):
    cfg, summary = spark_census
    assert our_processes(str(cfg.output_dir)) == []
    port = int(summary["engine"]["master"].rsplit(":", 1)[1])
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the master is gone


@pytest.mark.e2e
def test_status_prints_the_spark_application_of_each_beam_component(spark_census, capsys):
    cfg, _ = spark_census
    assert cli.main(["status", "--output", str(cfg.output_dir)]) == 0
    out = capsys.readouterr().out
    assert "Beam components ran on spark at spark://127.0.0.1:" in out
    assert out.count("Spark application: app-") == len(BEAM_NODES)


@pytest.mark.e2e
def test_the_spark_jobs_processed_every_row(spark_census):
    _, summary = spark_census
    stats = metadata.node_artifact(summary, "StatisticsGen", "ExampleStatistics")
    for split in ("train", "eval"):
        got = artifacts.load_stats(stats, split)
        assert got.datasets[0].num_examples == 300, split
    assert summary["metrics"]["Overall"]["example_count"] == 300  # the Evaluator's job
