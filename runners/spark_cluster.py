"""A Spark cluster for one run: the JDK probe, Beam's Spark job server (the jar matching the SDK,
or Beam's Spark runner resolved with a generated Maven POM), a local standalone master and worker
when no master is given, the Beam worker pool, the process supervisor and the watchdog.

`Cluster` starts what is missing, gives runners.spark the Beam arguments that reach it, lists the
Spark applications the run created, and stops everything it started on exit, failure, timeout or
Ctrl-C (services run in their own process groups; a cluster given by --spark-master is only used).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from typing import Iterator

from pipeline.config import ConfigError, FairwayError, cache_dir
from runners import progress

# Beam does not publish a job server for every release to every mirror: when the jar matching the
# SDK cannot be fetched, the job server runs from the newest complete Beam Spark runner on Maven
# Central (its portable protocol is stable across these versions; tested with SDK 2.74).
FALLBACK_JOB_SERVER_BEAM = "2.62.0"
# What Spark's own launcher adds for Java 17 (org.apache.spark.launcher.JavaModuleOptions).
_JAVA_OPENS = [f"--add-opens=java.base/{p}=ALL-UNNAMED" for p in (
    "java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio",
    "java.util", "java.util.concurrent", "java.util.concurrent.atomic", "jdk.internal.ref",
    "sun.nio.ch", "sun.nio.cs", "sun.security.action", "sun.util.calendar")]
_JAVA_FLAGS = ["-XX:+IgnoreUnrecognizedVMOptions", *_JAVA_OPENS,
               "--add-opens=java.security.jgss/sun.security.krb5=ALL-UNNAMED"]


class SparkError(FairwayError):
    """The Spark runner could not start, reach or finish; the message names the fix."""


@dataclasses.dataclass(frozen=True)
class SparkOptions:
    """How `fairway run --runner spark` reaches Spark."""

    master: str | None = None  # spark://host:port of an existing cluster; None: start one here
    ui: str | None = None  # the master's web UI; default http://<master host>:8080
    worker_pool: str | None = None  # host:port of the Beam worker pool on every worker node
    job_server_jar: str | None = None  # a Spark job server jar (default: fetched and cached)
    timeout: float = 3600.0  # seconds for the whole run; then everything is stopped
    startup_timeout: float = 180.0  # seconds for each service to come up
    worker_cores: int = os.cpu_count() or 2
    worker_memory: str = "4g"

    def __post_init__(self):
        if self.master is not None and not re.fullmatch(r"spark://[^/:]+:\d+", self.master):
            raise ConfigError(f"--spark-master: expected spark://HOST:PORT, got {self.master!r}")
        if self.worker_pool is not None and not re.fullmatch(r"[^/:]+:\d+", self.worker_pool):
            raise ConfigError(f"--worker-pool: expected HOST:PORT, got {self.worker_pool!r}")
        if self.job_server_jar is not None and not pathlib.Path(self.job_server_jar).is_file():
            raise ConfigError(f"--spark-job-server-jar: {self.job_server_jar} is not a file")
        if self.timeout <= 0 or self.startup_timeout <= 0:
            raise ConfigError("--timeout: expected a positive number of seconds")


def spark_home() -> pathlib.Path:
    import pyspark

    return pathlib.Path(pyspark.__file__).parent


def spark_version() -> str:
    import pyspark

    return pyspark.__version__


def beam_version() -> str:
    import apache_beam

    return apache_beam.__version__


def java() -> str:
    """The java binary (JAVA_HOME first, then PATH), checked to be a version Spark supports."""
    home = os.environ.get("JAVA_HOME")
    exe = str(pathlib.Path(home) / "bin" / "java") if home else shutil.which("java")
    if not exe or not os.access(exe, os.X_OK):
        raise SparkError("Java not found (JAVA_HOME unset and no `java` on PATH): Spark and "
                         "Beam's job server need a JDK 17 (e.g. `apt-get install "
                         "openjdk-17-jre-headless`), then set JAVA_HOME or put java on PATH")
    try:
        out = subprocess.run([exe, "-version"], capture_output=True, text=True,
                             timeout=60).stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SparkError(f"{exe} -version failed ({e}): check the JDK at JAVA_HOME") from None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        raise SparkError(f"{exe} -version printed no version: {out.strip()[:200]}")
    major = int(m.group(2)) if m.group(1) == "1" else int(m.group(1))
    if major not in (8, 11, 17):
        raise SparkError(f"{exe} is Java {major}; Spark {spark_version()} supports Java 8, 11 "
                         "and 17: set JAVA_HOME to a JDK 17")
    return exe


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>fairway</groupId><artifactId>spark-job-server</artifactId><version>1</version>
  <dependencies><dependency>
    <groupId>org.apache.beam</groupId><artifactId>beam-runners-spark-3</artifactId>
    <version>{version}</version>
  </dependency></dependencies>
</project>
"""


def _maven_job_server(version: str) -> list[str]:
    """The Beam Spark runner and its dependencies (Spark excluded: it is `provided`), resolved
    once with Maven into the cache."""
    lib = cache_dir("spark") / f"job-server-{version}" / "lib"
    done = lib.parent / ".complete"
    if not done.exists():
        mvn = shutil.which("mvn")
        if not mvn:
            raise SparkError(
                f"Beam's Spark job server for SDK {beam_version()} could not be downloaded and "
                "Maven (`mvn`) is not installed to assemble one: install Maven (`apt-get install "
                "maven`) or pass --spark-job-server-jar PATH")
        shutil.rmtree(lib.parent, ignore_errors=True)
        lib.mkdir(parents=True)
        (lib.parent / "pom.xml").write_text(_POM.format(version=version))
        print(f"spark: resolving Beam's Spark runner {version} with Maven into {lib.parent} "
              "(once; ~40 s)", flush=True)
        try:
            r = subprocess.run([mvn, "-q", "-B", "dependency:copy-dependencies",
                                f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
                               cwd=lib.parent, capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired:
            raise SparkError(f"Maven did not resolve beam-runners-spark-3 {version} within 15 "
                             "min: check access to Maven Central, or pass "
                             "--spark-job-server-jar") from None
        if r.returncode != 0:
            raise SparkError(f"Maven could not resolve beam-runners-spark-3 {version}:\n"
                             f"{(r.stdout + r.stderr)[-2000:]}")
        done.touch()
    # Spark's own slf4j binding wins over Beam's older slf4j-api.
    return sorted(str(j) for j in lib.glob("*.jar") if not j.name.startswith("slf4j-api"))


def job_server_classpath(jar: str | None) -> tuple[list[str], str]:
    """(classpath entries, Beam version) of the job server to start."""
    if jar:
        path = pathlib.Path(jar)
        m = re.search(r"(\d+\.\d+\.\d+)", path.name)
        return [str(path)], m.group(1) if m else "unknown"
    from apache_beam.utils import subprocess_server

    url = subprocess_server.JavaJarServer.path_to_beam_jar(
        ":runners:spark:3:job-server:shadowJar")
    try:
        return [subprocess_server.JavaJarServer.local_jar(url)], beam_version()
    except (OSError, RuntimeError) as e:  # Beam raises RuntimeError when no mirror has it
        print(f"spark: the job server matching Beam {beam_version()} could not be downloaded "
              f"({url}); using Beam's Spark runner {FALLBACK_JOB_SERVER_BEAM} from Maven Central "
              "(pass --spark-job-server-jar to use another)", flush=True)
        return _maven_job_server(FALLBACK_JOB_SERVER_BEAM), FALLBACK_JOB_SERVER_BEAM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def master_status(ui: str, timeout: float = 10.0) -> dict:
    """The standalone master's JSON status (workers, active and completed applications)."""
    with urllib.request.urlopen(ui.rstrip("/") + "/json/", timeout=timeout) as r:
        return json.load(r)


def master_spark_version(ui: str, timeout: float = 10.0) -> str | None:
    """The Spark version the master's web UI shows in its header, if it says."""
    with urllib.request.urlopen(ui.rstrip("/") + "/", timeout=timeout) as r:
        page = r.read().decode("utf-8", "replace")
    m = re.search(r'class="version"[^>]*>\s*([0-9][0-9.]*)', page)
    return m.group(1) if m else None


class _Process:
    """A started service in its own process group, so stopping it also stops its children
    (Spark executors, SDK harnesses)."""

    def __init__(self, name: str, cmd: list[str], log: pathlib.Path, env: dict[str, str]):
        self.name, self.log = name, log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; children that ignored SIGTERM get the SIGKILL round.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            return


class Cluster:
    """Spark master + worker (unless `options.master`), Beam worker pool and job server."""

    def __init__(self, options: SparkOptions, log_dir: pathlib.Path):
        self.options, self.log_dir = options, log_dir
        self.processes: list[_Process] = []
        self.master = options.master
        host = urllib.parse.urlparse(options.master).hostname if options.master else "127.0.0.1"
        self.ui = options.ui
        self._host = host
        self.job_port = self.artifact_port = 0
        self.worker_pool = options.worker_pool
        self.job_server_beam = ""
        self.aborted: str | None = None
        self.started_ms = 0
        self._stopping = threading.Lock()  # the watchdog and __exit__ may both stop

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Cluster":
        self.started_ms = int(time.time() * 1000)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        with self._stopping:
            for p in reversed(self.processes):
                p.stop()
            self.processes.clear()

    def abort(self, reason: str) -> None:
        """Stop everything now (the watchdog): the running Beam job fails at once."""
        self.aborted = reason
        print(f"\nspark: {reason}; stopping the job server, worker pool and cluster ...",
              file=progress.stderr(), flush=True)  # the console, also during a run
        self.stop()

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        timer = threading.Timer(seconds, self.abort, [f"timed out after {seconds:.0f}s"])
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    # -- start -------------------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> _Process:
        p = _Process(name, cmd, self.log_dir / f"{name}.log", {**os.environ, **(env or {})})
        self.processes.append(p)
        return p

    def _wait(self, what: str, proc: _Process | None, ready) -> None:
        end = time.monotonic() + self.options.startup_timeout
        while time.monotonic() < end:
            if proc is not None and proc.proc.poll() is not None:
                raise SparkError(f"{what} exited with code {proc.proc.returncode}; last lines of "
                                 f"{proc.log}:\n{proc.tail()}")
            with contextlib.suppress(OSError, ValueError):
                if ready():
                    return
            time.sleep(0.5)
        log = f"; see {proc.log}:\n{proc.tail()}" if proc else ""
        raise SparkError(f"{what} not ready after {self.options.startup_timeout:.0f}s{log}")

    def _start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        java_exe = java()
        # The worker's executor launcher needs SPARK_SCALA_VERSION (bin/spark-class sets it).
        scala = next(spark_home().glob("jars/scala-library-*.jar")).name.split("-")[2]
        env = {"SPARK_HOME": str(spark_home()), "JAVA_HOME": str(pathlib.Path(
            java_exe).resolve().parent.parent), "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_SCALA_VERSION": ".".join(scala.split(".")[:2])}
        spark_cp = f"{spark_home() / 'jars'}/*"
        if self.master:
            self._check_existing_master()
        else:
            self._start_local_cluster(java_exe, spark_cp, env)
        if not self.worker_pool:
            self._start_worker_pool()
        classpath, self.job_server_beam = job_server_classpath(self.options.job_server_jar)
        self.job_port, self.artifact_port = free_port(), free_port()
        # Executors put Spark's jars first; Beam's GCS registrar needs a newer Guava than
        # Spark's 14 (NoSuchMethodError in Preconditions otherwise).
        guava = [j for j in classpath if re.match(r"(guava|failureaccess)-", pathlib.Path(j).name)]
        js = self._spawn("job-server", [
            java_exe, *_JAVA_FLAGS, f"-Dspark.executor.extraClassPath={':'.join(guava)}",
            "-cp", ":".join([*classpath, spark_cp]),
            "org.apache.beam.runners.spark.SparkJobServerDriver",
            "--spark-master-url", self.master, "--job-host", "127.0.0.1",
            "--job-port", str(self.job_port), "--artifact-port", str(self.artifact_port),
            "--expansion-port", str(free_port()),
            "--artifacts-dir", str(self.log_dir / "artifacts")], env)
        self._wait(f"Beam Spark job server (Beam {self.job_server_beam})", js,
                   lambda: _listening("127.0.0.1", self.job_port))
        print(f"spark: master {self.master} (UI {self.ui}), Beam job server "
              f"{self.job_server_beam} on 127.0.0.1:{self.job_port}, worker pool "
              f"{self.worker_pool}; logs in {self.log_dir}", flush=True)

    def _start_local_cluster(self, java_exe: str, spark_cp: str, env: dict[str, str]) -> None:
        port, ui_port = free_port(), free_port()
        self.master, self.ui = f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}"
        print(f"spark: starting a local Spark {spark_version()} cluster at {self.master} ...",
              flush=True)
        daemon = [java_exe, *_JAVA_FLAGS, "-Xmx512m", "-cp", spark_cp]
        master = self._spawn("spark-master", [
            *daemon, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
            "--port", str(port), "--webui-port", str(ui_port)], env)
        self._wait("Spark master", master, lambda: master_status(self.ui)["status"] == "ALIVE")
        work = self.log_dir / "work"
        worker = self._spawn("spark-worker", [
            *daemon, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
            "--webui-port", str(free_port()), "--cores", str(self.options.worker_cores),
            "--memory", self.options.worker_memory, "--work-dir", str(work), self.master], env)
        self._wait("Spark worker", worker, lambda: master_status(self.ui)["aliveworkers"] >= 1)

    def _start_worker_pool(self) -> None:
        port = free_port()
        self.worker_pool = f"127.0.0.1:{port}"
        # The pool starts SDK harnesses as `python`: this interpreter must come first on PATH.
        bin_dir = str(pathlib.Path(sys.executable).parent)
        pool = self._spawn("beam-worker-pool", [
            sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
            f"--service_port={port}"], {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"})
        self._wait("Beam worker pool", pool, lambda: _listening("127.0.0.1", port))

    def _check_existing_master(self) -> None:
        port = urllib.parse.urlparse(self.master).port
        if not _listening(self._host, port, timeout=5.0):
            raise SparkError(
                f"cannot reach the Spark master at {self.master} (no answer on {self._host}:"
                f"{port} within 5s): check the URL and that the master runs "
                "(`$SPARK_HOME/sbin/start-master.sh`), or omit --spark-master to start a local "
                "cluster")
        self.ui = self.ui or f"http://{self._host}:8080"
        try:
            version = master_spark_version(self.ui)
        except (OSError, ValueError) as e:
            raise SparkError(f"the Spark master's web UI {self.ui} does not answer ({e}): pass "
                             "--spark-ui URL (Fairway reads it to check the Spark version and to "
                             "list the applications each component ran)") from None
        mine = spark_version()
        if version and version.split(".")[:2] != mine.split(".")[:2]:
            raise SparkError(
                f"the cluster at {self.master} runs Spark {version}, but Fairway's job server "
                f"uses Spark {mine} (the pyspark wheel); Spark clients and masters of different "
                f"minor versions cannot talk: install `pyspark=={'.'.join(version.split('.')[:2])}"
                ".*` in Fairway's environment, or run a Spark "
                f"{'.'.join(mine.split('.')[:2])} cluster")

    # -- use ---------------------------------------------------------------------------------
    def applications(self) -> list[dict]:
        """Applications this run created (started after the cluster came up), from the master."""
        status = master_status(self.ui)
        apps = []
        for state_key in ("activeapps", "completedapps"):
            for a in status.get(state_key, []):
                if a.get("starttime", 0) >= self.started_ms:
                    apps.append({k: a.get(k) for k in ("id", "name", "state", "starttime",
                                                       "duration", "cores")})
        return sorted(apps, key=lambda a: a["starttime"])


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A terminated `fairway run` still stops its services (they run in their own sessions)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
