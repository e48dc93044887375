"""A private MariaDB server for the tests that keep ML Metadata on a MySQL-compatible store.

The session fixture `mariadb` starts `mariadbd` (the Debian package `mariadb-server`, which
`make test` installs) on 127.0.0.1 and a free port, with its own datadir under pytest's tmp dir,
waits until it accepts connections, and stops it by its pid when the session ends, also when
tests failed. No system service is used (it cannot start here). A test gets a fresh database
and a user with `mariadb.database("name", password=...)`: the dict is a `[pipeline.mysql]`
table (no password in it: pass the password through FAIRWAY_MYSQL_PASSWORD or a file).

When `mariadbd` is missing or does not start, the tests that use the fixture fail with the
reason (never skipped: CI installs it)."""
from __future__ import annotations

import getpass
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 120.0  # seconds for a new datadir and the server to come up (2 busy cores)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_INSTALL_HINT = ("install the Debian package mariadb-server (`make mariadb`, or "
                 "`apt-get install -y mariadb-server`)")


class MariaDBError(RuntimeError):
    pass


def _binary(name: str) -> str:
    """A MariaDB program on PATH or in the Debian package's folders (/usr/sbin is not on every
    user's PATH)."""
    found = shutil.which(name) or next(
        (str(p) for p in (pathlib.Path("/usr/sbin") / name, pathlib.Path("/usr/bin") / name)
         if p.is_file() and os.access(p, os.X_OK)), None)
    if found is None:
        raise MariaDBError(f"{name} not found: {_INSTALL_HINT}")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class MariaDB:
    """One private server: `start()`, then `database()` / `sql()`, then `stop()`."""

    def __init__(self, base: pathlib.Path):
        self.base = base
        self.datadir = base / "data"
        # A unix socket path has a ~107-byte limit; pytest's tmp paths can be longer.
        sock = base / "mysqld.sock"
        self.socket = sock if len(str(sock)) < 100 else \
            pathlib.Path(tempfile.mkdtemp(prefix="fw-mdb-")) / "mysqld.sock"
        self.error_log = base / "error.log"
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.user = getpass.getuser()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, attempts: int = 3) -> "MariaDB":
        mariadbd, install_db = _binary("mariadbd"), _binary("mariadb-install-db")
        self.client = _binary("mariadb")
        self.datadir.mkdir(parents=True, exist_ok=True)
        init = subprocess.run(
            [install_db, "--no-defaults", f"--user={self.user}", f"--datadir={self.datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            capture_output=True, text=True)
        if init.returncode != 0:
            raise MariaDBError(f"mariadb-install-db failed ({init.returncode}):\n"
                               f"{init.stdout[-2000:]}{init.stderr[-2000:]}")
        for attempt in range(attempts):  # another process may take the free port first
            self.port = _free_port()
            self.process = subprocess.Popen(
                [mariadbd, "--no-defaults", f"--user={self.user}", f"--datadir={self.datadir}",
                 f"--socket={self.socket}", f"--port={self.port}", f"--bind-address={HOST}",
                 "--skip-name-resolve", f"--log-error={self.error_log}",
                 f"--pid-file={self.base / 'mariadbd.pid'}", "--innodb-buffer-pool-size=64M"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            if self._wait_ready():
                return self
            if attempt == attempts - 1 or "Address already in use" not in self._log_tail():
                break
        self.stop()
        raise MariaDBError(f"mariadbd did not start (port {self.port}, datadir {self.datadir});"
                           f" its log {self.error_log}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.error_log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    pass
                self.sql("SELECT 1")
                return True
            except (OSError, MariaDBError):
                time.sleep(0.2)
        return False

    def stop(self) -> None:
        """SIGTERM to the server's pid (a clean InnoDB shutdown), SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def sql(self, statements: str, database: str | None = None) -> str:
        """Run SQL as the server's root (unix socket); tab-separated rows, no header."""
        done = subprocess.run(
            [self.client, "--no-defaults", f"--socket={self.socket}", "--user=root", "--batch",
             "--skip-column-names", *([database] if database else []), "-e", statements],
            capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise MariaDBError(f"SQL failed: {statements!r}: {done.stderr.strip()}")
        return done.stdout

    def database(self, name: str, *, user: str | None = None, password: str = "") -> dict:
        """A new empty database `name` (dropped first if a test made it before) and a user
        (default: the database's name) allowed everything on it from 127.0.0.1, with
        `password` ("" for none). Returns the `[pipeline.mysql]` table for it."""
        user = user or name
        for what, value in (("database", name), ("user", user)):
            if not _NAME.match(value):
                raise ValueError(f"{what} name {value!r}: letters, digits and '_' expected")
        account = f"{_quote(user)}@'%'"
        identified = f" IDENTIFIED BY {_quote(password)}" if password else ""
        self.sql(f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`; "
                 f"DROP USER IF EXISTS {account}; CREATE USER {account}{identified}; "
                 f"GRANT ALL PRIVILEGES ON `{name}`.* TO {account}; FLUSH PRIVILEGES;")
        return {"host": HOST, "port": self.port, "database": name, "user": user}


def toml_table(mysql: dict) -> str:
    """The `[pipeline.mysql]` table of a config file, from `MariaDB.database()` (plus e.g.
    password_env or password_file entries)."""
    def value(v):
        return str(v) if isinstance(v, int) else '"' + str(v).replace('"', '\\"') + '"'
    return "[pipeline.mysql]\n" + "".join(f"{k} = {value(v)}\n" for k, v in mysql.items())


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    """The session's private MariaDB server (see the module doc); fails the test with the
    reason when mariadbd is missing or does not start."""
    server = MariaDB(tmp_path_factory.mktemp("mariadb"))
    try:
        server.start()
    except MariaDBError as e:
        pytest.fail(f"MariaDB for the ML Metadata tests: {e}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
