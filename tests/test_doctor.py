"""`fairway doctor`: the pinned environment passes; each problem is a line with its fix."""
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

from runners import cli, doctor


def _lines(out: str) -> dict[str, str]:
    """check name -> its line (`status name finding -- fix: ...`)."""
    found = {}
    for line in out.splitlines():
        m = re.match(r"(ok|warn|FAIL)\s+(\S+)\s", line)
        if m:
            found[m[2]] = line
    return found


def test_the_pinned_environment_passes(capsys, tmp_path):
    assert cli.main(["doctor", "--output", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    lines = _lines(out)
    assert set(lines) == {"python", "glibc", "lock", "imports", "java", "chromium", "mariadb",
                          "store", "disk"}
    for name in ("python", "glibc", "lock", "imports", "store"):
        assert lines[name].startswith("ok "), lines[name]
    assert "Python 3.10." in lines["python"]
    assert "the installed wheels need >= 2." in lines["glibc"]
    assert "requirements/lock.txt" in lines["lock"] and "fairness-indicators.txt" in lines["lock"]
    assert "tensorflow 2.16" in lines["imports"]
    assert "no SQLite store yet" in lines["store"] and "census.toml" in lines["store"]
    # Tools and disk may warn on another machine, never fail; a warning carries its fix.
    for name in ("java", "chromium", "mariadb", "disk"):
        assert not lines[name].startswith("FAIL"), lines[name]
        assert lines[name].startswith("ok ") or "-- fix: " in lines[name]
    assert "FAIL" not in out


def test_a_different_pin_names_the_package_both_versions_and_the_fix(capsys, tmp_path):
    import importlib.metadata

    numpy = importlib.metadata.version("numpy")
    lock = tmp_path / "lock.txt"
    lock.write_text("numpy==0.0.1 \\\n    --hash=sha256:00\n    # via tensorflow\n"
                    "fairway==9.9 \\\n    --hash=sha256:00\n"
                    "no-such-package-xyz==1.0 \\\n    --hash=sha256:00\n")
    assert cli.main(["doctor", "--lock", str(lock), "--output", str(tmp_path)]) == \
        cli.EXIT_FAILED
    line = _lines(capsys.readouterr().out)["lock"]
    assert line.startswith("FAIL ")
    assert f"numpy {numpy} installed, lock 0.0.1" in line
    assert "missing: no-such-package-xyz==1.0" in line
    assert "fairway" not in line.split("-- fix:")[0].replace("fairway doctor", "")
    assert "-- fix: VIRTUAL_ENV=" in line and f"uv pip sync --require-hashes {lock}" in line


def test_the_default_fix_is_the_makefiles_sync():
    fix = doctor.sync_fix()
    assert "make env" in fix or "uv pip sync --require-hashes" in fix


def test_missing_java_is_a_warning_with_the_fix(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java there
    assert cli.main(["doctor", "--output", str(tmp_path / "out")]) == 0
    line = _lines(capsys.readouterr().out)["java"]
    assert line.startswith("warn ") and "Java not found" in line
    assert "-- fix: apt-get install -y openjdk-17-jre-headless" in line


def test_an_unreachable_mysql_store_fails_naming_host_port_and_config(capsys, tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp_path / "mysql.toml"
    config.write_text('[dataset]\nname = "census"\nsource = "census"\nnumeric = ["age"]\n'
                      'label = "income"\n[pipeline.mysql]\nhost = "127.0.0.1"\n'
                      f'port = {port}\ndatabase = "fairway_md"\n')
    start = time.monotonic()
    assert cli.main(["doctor", "--config", str(config), "--output", str(tmp_path)]) == \
        cli.EXIT_FAILED
    assert time.monotonic() - start < 10
    line = _lines(capsys.readouterr().out)["store"]
    assert line.startswith("FAIL ")
    assert f"cannot reach 127.0.0.1:{port}" in line and str(config) in line
    assert "-- fix: start the server" in line


Usage = collections.namedtuple("Usage", "total used free")


@pytest.mark.parametrize("free_gb, status, code, text", [(0.5, "FAIL", 1, "512 MB free"),
                                                         (3, "warn", 0, "3.0 GB free")])
def test_low_free_disk_is_reported(capsys, tmp_path, monkeypatch, free_gb, status, code, text):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(100 << 30, 0, int(free_gb * 2**30)))
    assert cli.main(["doctor", "--output", str(tmp_path)]) == code
    line = _lines(capsys.readouterr().out)["disk"]
    assert line.startswith(status) and text in line
    assert "-- fix: free space" in line and "--output DIR" in line


def test_json_has_a_status_per_check(capsys, tmp_path):
    assert cli.main(["doctor", "--json", "--output", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] in ("ok", "warn") and report["config"].endswith("census.toml")
    statuses = {c["check"]: c["status"] for c in report["checks"]}
    assert statuses["lock"] == statuses["python"] == statuses["glibc"] == "ok"
    assert set(statuses.values()) <= {"ok", "warn"}
    assert all({"finding", "fix", "details"} <= set(c) for c in report["checks"])


def test_a_bad_config_is_a_fail_line_not_a_traceback(capsys, tmp_path):
    assert cli.main(["doctor", "--config", str(tmp_path / "nope.toml")]) == cli.EXIT_FAILED
    captured = capsys.readouterr()
    line = _lines(captured.out)["config"]
    assert "nope.toml: config file not found" in line and "Traceback" not in captured.err


def test_core_stack_not_installed_or_shadowed(tmp_path, monkeypatch):
    (tmp_path / "fairway_doctor_shadow.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    check = doctor.check_core(doctor.installed(), {}, {"fairway_doctor_missing": "x",
                                                       "fairway_doctor_shadow": "tfx"})
    assert check.status == doctor.FAIL
    assert "fairway_doctor_missing: not installed" in check.finding
    assert "fairway_doctor_shadow.py is imported instead" in check.finding
    assert "shadowing file" in check.fix


def test_imports_report_the_last_line_of_the_error_and_time_out(tmp_path):
    (tmp_path / "fairway_doctor_broken.py").write_text(
        "raise ImportError('libfoo.so.1: cannot open shared object file')\n")
    (tmp_path / "fairway_doctor_slow.py").write_text("import time\ntime.sleep(60)\n")
    env = {"PYTHONPATH": str(tmp_path)}
    check = doctor.check_imports(["json", "fairway_doctor_broken"], env=env)
    assert check.status == doctor.FAIL and check.fix
    assert check.finding == ("fairway_doctor_broken: ImportError: libfoo.so.1: cannot open "
                             "shared object file")
    start = time.monotonic()
    check = doctor.check_imports(["fairway_doctor_slow"], timeout=2, env=env)
    assert time.monotonic() - start < 10
    assert check.finding == "fairway_doctor_slow: did not finish within 2s"


def test_glibc_older_than_the_wheels_or_a_tfx_117_lock_fails():
    dists = doctor.installed()
    old = doctor.check_glibc(dists, {}, libc=(2, 17))
    assert old.status == doctor.FAIL and "glibc 2.17, but the installed wheels need" in old.finding
    assert "make env" in old.fix
    newer = doctor.check_glibc(dists, {"ml-metadata": "1.17.0"}, libc=(2, 36))
    assert newer.status == doctor.FAIL and "ml-metadata 1.17.0 (glibc 2.39)" in newer.finding
    assert doctor.check_glibc(dists, {"ml-metadata": "1.16.0"}, libc=(2, 36)).status == doctor.OK


def test_it_runs_when_tensorflow_cannot_import(tmp_path):
    """The doctor never imports TensorFlow: a broken one is a FAIL line with the fix, no
    traceback (a package of that name first on PYTHONPATH stands in for a broken install)."""
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text("raise ImportError('broken')\n")
    p = subprocess.run([sys.executable, "-m", "runners.cli", "doctor", "--output",
                        str(tmp_path / "out")], capture_output=True, text=True, timeout=60,
                       cwd=doctor.REPO_ROOT, env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert p.returncode == cli.EXIT_FAILED and "Traceback" not in p.stderr, p.stderr
    line = _lines(p.stdout)["imports"]
    assert line.startswith("FAIL ") and f"{tmp_path}/tensorflow" in line
    assert "-- fix: rename or remove the shadowing file" in line
    assert _lines(p.stdout)["lock"].startswith("ok ")
