"""`fairway doctor`: checks the platform against what the pinned stack needs and prints, for
each problem, the command that fixes it.

One line per check: `ok`, `warn` or `FAIL`, the finding and the fix. The checks: the Python and
glibc versions, the installed packages against the hashed locks, the core stack (tfx,
tensorflow, apache_beam, tensorflow_model_analysis), Java for `--runner spark`, Chromium and
MariaDB for the tests, the metadata store of the config in use, and the free disk space where
the outputs go.

It is what a user runs when imports are broken, so this module imports only the standard
library at module level and never imports TensorFlow in-process. The core stack is checked
with `importlib.util.find_spec` plus the distributions' metadata by default (milliseconds:
importing TensorFlow takes ~10 s and TFMA ~16 s on 2 cores, far over the command's budget, and
a native-library or version conflict shows up as a lock or glibc finding); `--imports` imports
the four packages for real in a child process with a timeout and reports each failure's last
line.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import re
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import time
from typing import Any, Callable, Iterable

OK, WARN, FAIL = "ok", "warn", "FAIL"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCKS = (REPO_ROOT / "requirements" / "lock.txt",
         REPO_ROOT / "requirements" / "fairness-indicators.txt")
PYTHON = (3, 10)  # pyproject.toml: requires-python >=3.10,<3.11 (TFX 1.16)
# PLATFORM.md: from 1.17 on, ml-metadata and TFDV ship only manylinux_2_39 wheels (TFX 1.17+).
NEWER_GLIBC = {"ml-metadata": ((1, 17), (2, 39)),
               "tensorflow-data-validation": ((1, 17), (2, 39))}
# Top-level module -> its distribution in the lock.
CORE = {"tfx": "tfx", "tensorflow": "tensorflow", "apache_beam": "apache-beam",
        "tensorflow_model_analysis": "tensorflow-model-analysis"}
# What --imports imports (tfx itself is lazy: tfx.v1 loads the components).
IMPORTS = ("tensorflow", "apache_beam", "tensorflow_model_analysis", "tfx.v1")
IMPORT_TIMEOUT = 300.0  # seconds for all of them (TFMA alone: ~16 s here)
STORE_TIMEOUT = 5.0  # seconds to reach and open a MySQL/MariaDB store
DISK_WARN, DISK_FAIL = 5 << 30, 1 << 30
_SHOWN = 5  # packages named per finding


@dataclasses.dataclass
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    finding: str
    fix: str | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def line(self) -> str:
        fix = f" -- fix: {self.fix}" if self.fix and self.status != OK else ""
        return f"{self.status:<5} {self.name:<8} {self.finding}{fix}"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status.lower(), "finding": self.finding,
                "fix": self.fix if self.status != OK else None, "details": self.details}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _show(path: pathlib.Path | str) -> str:
    """A path relative to the working folder when inside it."""
    path = pathlib.Path(path)
    try:
        return str(path.resolve().relative_to(pathlib.Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def installed() -> dict[str, importlib.metadata.Distribution]:
    """Normalized name -> distribution, as the running interpreter sees them (first wins, as
    imports do)."""
    out: dict[str, importlib.metadata.Distribution] = {}
    for d in importlib.metadata.distributions():
        name = d.metadata["Name"]
        if name:
            out.setdefault(_norm(name), d)
    return out


# -- Python and glibc ------------------------------------------------------------------------
def check_python(version_info=sys.version_info) -> Check:
    have = ".".join(map(str, tuple(version_info)[:3]))
    need = ".".join(map(str, PYTHON))
    if tuple(version_info)[:2] == PYTHON:
        return Check("python", OK, f"Python {have} ({sys.executable}); TFX 1.16 needs {need}")
    return Check("python", FAIL, f"Python {have} ({sys.executable}); the pinned stack "
                 f"(TFX 1.16) needs Python {need}.x",
                 f"make env with Python {need} (pyenv install {need}, or "
                 f"PYTHON310=/path/to/python{need} make env), then use .venv/bin/fairway")


def _wheel_glibc(dist: importlib.metadata.Distribution) -> tuple[tuple[int, int], str] | None:
    """The oldest glibc one of the installed wheel's manylinux tags accepts, with the tag."""
    try:
        text = dist.read_text("WHEEL") or ""
    except OSError:
        return None
    best = None
    for line in text.splitlines():
        if not line.startswith("Tag:"):
            continue
        plat = line.split(":", 1)[1].strip().split("-")[-1]
        m = re.match(r"manylinux_(\d+)_(\d+)_", plat)
        legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
        need = (int(m[1]), int(m[2])) if m else next(
            (v for k, v in legacy.items() if plat.startswith(k + "_")), None)
        if need and (best is None or need < best[0]):
            best = (need, plat)
    return best


def check_glibc(dists, pins: dict[str, str], libc: tuple[int, int] | None = None) -> Check:
    if libc is None:
        try:
            name, _, ver = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
        except (ValueError, OSError, AttributeError):
            name, ver = "", ""
        if name != "glibc":
            return Check("glibc", FAIL, "not a glibc system: TensorFlow's and ML Metadata's "
                         "wheels are manylinux (glibc) only",
                         "run on a glibc Linux (e.g. Debian 12) or in the Dockerfile's image")
        libc = _version(ver)[:2]
    have = ".".join(map(str, libc))
    needs = [(need, _norm(d.metadata["Name"]), tag) for d in dists.values()
             if (w := _wheel_glibc(d)) for need, tag in [w]]
    need, who, tag = max(needs) if needs else ((2, 17), "tensorflow", "manylinux_2_17")
    details = {"glibc": have, "wheels_need": ".".join(map(str, need)), "highest": who}
    too_new = [f"{p} {pins[p]} (glibc {'.'.join(map(str, g))})"
               for p, (first, g) in NEWER_GLIBC.items()
               if p in pins and _version(pins[p])[:2] >= first and libc < g]
    if libc < need:
        return Check("glibc", FAIL, f"glibc {have}, but the installed wheels need {need[0]}."
                     f"{need[1]} ({who}: {tag}): the environment was built on a newer system",
                     "rebuild the environment on this machine: rm -rf .venv && make env",
                     details)
    if too_new:
        return Check("glibc", FAIL, f"glibc {have}; the lock pins {', '.join(too_new)}: those "
                     "wheels do not install here (TFX 1.17+ needs glibc 2.39)",
                     "keep TFX 1.16 in the lock (git checkout requirements/), or move to a "
                     "host with glibc >= 2.39", details)
    return Check("glibc", OK, f"glibc {have}; the installed wheels need >= {need[0]}.{need[1]} "
                 f"({who}: {tag}); TFX 1.17+ would need 2.39", details=details)


# -- the locks -------------------------------------------------------------------------------
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def read_pins(locks: Iterable[pathlib.Path]) -> dict[str, str]:
    """name -> version of every `name==version` line of the locks (later files win)."""
    pins = {}
    for lock in locks:
        for line in pathlib.Path(lock).read_text().splitlines():
            if m := _PIN.match(line):
                pins[_norm(m[1])] = m[2]
    return pins


def sync_fix(locks: Iterable[pathlib.Path] = LOCKS) -> str:
    """How the Makefile installs the locks into this environment."""
    venv = pathlib.Path(sys.prefix).resolve()
    if venv == (REPO_ROOT / ".venv").resolve() and list(locks) == list(LOCKS):
        cd = "" if pathlib.Path.cwd().resolve() == REPO_ROOT else f"cd {REPO_ROOT} && "
        # make env only re-syncs when a lock is newer than its stamp.
        return f"{cd}rm -f .venv/.installed && make env"
    return " && ".join(f"VIRTUAL_ENV={venv} uv pip {'sync' if i == 0 else 'install --no-deps'} "
                       f"--require-hashes {'' if i == 0 else '-r '}{_show(lock)}"
                       for i, lock in enumerate(locks))


def _same(installed: str, pinned: str) -> bool:
    if installed == pinned:
        return True
    try:
        from packaging.version import Version

        return Version(installed) == Version(pinned)
    except Exception:  # packaging missing or an unparsable version: compare the text
        return False


def check_lock(dists, locks: Iterable[pathlib.Path] = LOCKS) -> tuple[Check, dict[str, str]]:
    locks = [pathlib.Path(p) for p in locks]
    names = ", ".join(_show(p) for p in locks)
    try:
        pins = read_pins(locks)
    except OSError as e:
        return Check("lock", WARN, f"cannot read the lock: {e.filename}: {e.strerror}",
                     "run from a Fairway checkout (requirements/lock.txt)"), {}
    pins.pop("fairway", None)
    missing = sorted(n for n in pins if n not in dists)
    differ = sorted((n, dists[n].version, v) for n, v in pins.items()
                    if n in dists and not _same(dists[n].version, v))
    extra = sorted(n for n in dists if n not in pins and n != "fairway")
    details = {"locks": [str(p) for p in locks], "pinned": len(pins),
               "missing": missing, "extra": extra,
               "different": [{"package": n, "installed": i, "lock": v} for n, i, v in differ]}
    if not missing and not differ:
        more = f"; {len(extra)} more installed, not in the lock" if extra else ""
        return Check("lock", OK, f"all {len(pins)} packages pinned in {names} installed at "
                     f"their versions{more}", details=details), pins
    parts = []
    if differ:
        shown = "; ".join(f"{n} {i} installed, lock {v}" for n, i, v in differ[:_SHOWN])
        more = f"; and {len(differ) - _SHOWN} more" if len(differ) > _SHOWN else ""
        parts.append(f"{len(differ)} differ from the lock: {shown}{more}")
    if missing:
        shown = ", ".join(f"{n}=={pins[n]}" for n in missing[:_SHOWN])
        more = f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else ""
        parts.append(f"{len(missing)} missing: {shown}{more}")
    return Check("lock", FAIL, f"{len(pins)} pinned in {names}: {'; '.join(parts)}",
                 sync_fix(locks), details), pins


# -- the core stack --------------------------------------------------------------------------
def _site_dirs() -> list[pathlib.Path]:
    dirs = {sysconfig.get_paths()[k] for k in ("purelib", "platlib")}
    dirs.update(getattr(site, "getsitepackages", lambda: [])())
    if site.ENABLE_USER_SITE:
        dirs.add(site.getusersitepackages())
    return [pathlib.Path(d).resolve() for d in dirs]


def check_core(dists, pins: dict[str, str], core: dict[str, str] | None = None) -> Check:
    """Found in this environment's site-packages with its distribution's metadata (not
    imported: see the module's docstring)."""
    core = CORE if core is None else core
    sites, found, problems = _site_dirs(), [], []
    for module, dist in core.items():
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError) as e:
            problems.append(f"{module}: {type(e).__name__}: {e}")
            continue
        origin = spec and (spec.origin if spec.origin not in (None, "namespace") else
                           next(iter(spec.submodule_search_locations or []), None))
        if not origin:
            problems.append(f"{module}: not installed (No module named '{module}')")
            continue
        where = pathlib.Path(origin).resolve()
        if not any(where.is_relative_to(s) for s in sites):
            problems.append(f"{module}: {where} is imported instead of the installed package "
                            "(a file or folder of that name shadows it)")
            continue
        d = dists.get(_norm(dist))
        if d is None:
            problems.append(f"{module}: files present but no {dist} distribution metadata "
                            "(a broken install)")
            continue
        found.append(f"{module} {d.version}")
    if problems:
        shadow = any("shadows it" in p for p in problems)
        fix = ("rename or remove the shadowing file, or run from another folder" if shadow
               else sync_fix())
        return Check("imports", FAIL, "; ".join(problems), fix, {"problems": problems})
    return Check("imports", OK, f"{', '.join(found)} present (not imported; --imports imports "
                 "them, ~40 s)")


_PROBE = """
import json, sys, time, traceback
for name in sys.argv[1:]:
    start = time.monotonic()
    try:
        __import__(name)
        error = None
    except BaseException as e:
        error = traceback.format_exception_only(type(e), e)[-1].strip()
    print("@doctor " + json.dumps({"module": name, "error": error,
                                   "seconds": round(time.monotonic() - start, 1)}), flush=True)
"""


def check_imports(modules: Iterable[str] = IMPORTS, timeout: float = IMPORT_TIMEOUT,
                  env: dict[str, str] | None = None) -> Check:
    """Import the modules in a child process, one after the other; each failure's last line."""
    modules = list(modules)
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
           **(env or {})}
    start = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-c", _PROBE, *modules], capture_output=True,
                           text=True, timeout=timeout, env=env, cwd=REPO_ROOT)
        out, err, code = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, code = "", None
    results = [json.loads(line[8:]) for line in out.splitlines() if line.startswith("@doctor ")]
    seconds = round(time.monotonic() - start, 1)
    problems = [f"{r['module']}: {r['error']}" for r in results if r["error"]]
    done = {r["module"] for r in results}
    rest = [m for m in modules if m not in done]
    if rest:
        if code is None:
            why = f"did not finish within {timeout:.0f}s"
        else:
            last = (err.strip().splitlines() or ["no message"])[-1]
            why = f"the import crashed the interpreter (exit code {code}): {last}"
        problems.append(f"{rest[0]}: {why}")
    details = {"imports": results, "seconds": seconds}
    if problems:
        return Check("imports", FAIL, "; ".join(problems), sync_fix(), details)
    return Check("imports", OK, ", ".join(f"{r['module']} ({r['seconds']}s)" for r in results)
                 + f" import in a fresh interpreter ({seconds}s)", details=details)


# -- tools -----------------------------------------------------------------------------------
JAVA_FIX = ("apt-get install -y openjdk-17-jre-headless (as root), then set JAVA_HOME or put "
            "java on PATH")


def check_java() -> Check:
    """Found the way `fairway run --runner spark` finds it (runners.spark_cluster.java)."""
    what = "only `fairway run --runner spark` needs it"
    try:
        from runners import spark_cluster

        exe = spark_cluster.java()
    except ImportError as e:
        return Check("java", WARN, f"cannot check (runners.spark_cluster: {e})", sync_fix())
    except Exception as e:  # SparkError: not found, no version, an unsupported version
        return Check("java", WARN, f"{e} ({what})", JAVA_FIX)
    home = pathlib.Path(exe).resolve().parent.parent
    release = home / "release"
    version = ""
    if release.is_file():
        m = re.search(r'JAVA_VERSION="([^"]+)"', release.read_text(errors="replace"))
        version = f"Java {m[1]} " if m else ""
    source = "JAVA_HOME" if os.environ.get("JAVA_HOME") else "PATH"
    return Check("java", OK, f"{version}at {exe} (from {source}) for `--runner spark`",
                 details={"java": exe, "home": str(home)})


def _tool(*names: str, sbin: bool = False) -> str | None:
    for name in names:
        found = shutil.which(name)
        if not found and sbin:
            found = next((str(p) for d in ("/usr/sbin", "/usr/local/sbin")
                          if (p := pathlib.Path(d) / name).is_file()
                          and os.access(p, os.X_OK)), None)
        if found:
            return found
    return None


def check_chromium() -> Check:
    exe = _tool("chromium", "chromium-browser")
    if exe:
        return Check("chromium", OK, f"{exe} (the page tests render in headless Chromium)")
    return Check("chromium", WARN, "no chromium on PATH: the report and statistics-view tests "
                 "that render pages fail", "make chromium")


def check_mariadb() -> Check:
    exe = _tool("mariadbd", sbin=True)
    if exe:
        return Check("mariadb", OK, f"{exe} (the ML Metadata on MySQL tests start a private "
                     "server)")
    return Check("mariadb", WARN, "no mariadbd (PATH, /usr/sbin): the ML Metadata on MySQL "
                 "tests fail", "make mariadb")


# -- the metadata store ----------------------------------------------------------------------
def check_store(cfg, config_file: str, timeout: float = STORE_TIMEOUT) -> Check:
    src = f"config {config_file}"
    if cfg.mysql:
        return _check_mysql(cfg, src, timeout)
    path = pathlib.Path(cfg.metadata_path)
    if path.exists():
        import sqlite3

        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
            try:
                version = con.execute("SELECT schema_version FROM MLMDEnv").fetchone()
            finally:
                con.close()
        except sqlite3.Error as e:
            return Check("store", FAIL, f"{_show(path)} ({src}) is not a readable ML Metadata "
                         f"store: {e}", f"move {_show(path)} away (a run creates a new one) or "
                         "pass --output DIR")
        if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
            return Check("store", FAIL, f"{_show(path)} ({src}) opens but is not writable",
                         f"chmod u+w {_show(path)} {_show(path.parent)}, or pass --output DIR")
        schema = f", MLMD schema {version[0]}" if version else ""
        return Check("store", OK, f"SQLite {_show(path)} opens and is writable{schema} ({src})")
    parent = _existing(path.parent)
    if not os.access(parent, os.W_OK):
        return Check("store", FAIL, f"no store yet at {_show(path)} ({src}) and {_show(parent)} "
                     "is not writable", "pass --output DIR on a writable disk")
    return Check("store", OK, f"no SQLite store yet at {_show(path)} ({src}); `fairway run` "
                 f"creates it ({_show(parent)} is writable)")


_STORE_PROBE = """
import sys
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
config = metadata_store_pb2.ConnectionConfig.FromString(sys.stdin.buffer.read())
try:
    metadata_store.MetadataStore(config).get_context_types()
except Exception as e:
    sys.exit(str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__)
"""


def _check_mysql(cfg, src: str, timeout: float) -> Check:
    m = cfg.mysql
    where = f"{m.host}:{m.port}"
    details = {"store": m.describe()}
    server_fix = (f"start the server (docs/mariadb.md: a private mariadbd) or correct host/port "
                  f"in [pipeline.mysql] of {src.removeprefix('config ')}")
    try:
        with socket.create_connection((m.host, m.port), timeout=timeout):
            pass
    except OSError as e:
        reason = "no answer" if isinstance(e, socket.timeout) else (e.strerror or str(e))
        return Check("store", FAIL, f"cannot reach {where} ({reason} within {timeout:g}s): ML "
                     f"Metadata at {m.describe()} ({src})", server_fix, details)
    try:
        from pipeline.config import ConfigError

        m.password()
    except ConfigError as e:
        return Check("store", FAIL, str(e), f"export {m.password_env}=... (or "
                     "pipeline.mysql.password_file)", details)
    try:
        from pipeline import metadata

        conn = metadata.connection_config(cfg).SerializeToString()
    except ImportError as e:
        return Check("store", FAIL, f"ml_metadata does not import: {e}", sync_fix(), details)
    # In a child process: ML Metadata's C++ connect holds the GIL and has no timeout, so a
    # server that accepts connections but never answers would hang the doctor itself.
    try:
        p = subprocess.run([sys.executable, "-c", _STORE_PROBE], input=conn,
                           capture_output=True, timeout=max(timeout, 10.0), cwd=REPO_ROOT)
    except subprocess.TimeoutExpired:
        return Check("store", FAIL, f"{where} accepts connections but ML Metadata did not open "
                     f"{m.describe()} ({src}) within {max(timeout, 10.0):g}s", server_fix,
                     details)
    if p.returncode:
        err = p.stderr.decode(errors="replace").strip()
        text = err.splitlines()[-1] if err else f"exit code {p.returncode}"
        if re.search(r"errno: , error:\s*$", text):  # MLMD 1.16 drops MySQL's reason
            text += " (no reason given: usually the password, the user or its rights)"
        return Check("store", FAIL, f"{m.describe()} ({src}): {text}",
                     f"check the user, its password (${m.password_env} or password_file) and "
                     f"its rights on database {m.database}", details)
    return Check("store", OK, f"ML Metadata at {m.describe()} opens ({src})", details=details)


# -- disk ------------------------------------------------------------------------------------
def _existing(path: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _size(folder: pathlib.Path, max_files: int = 50_000) -> tuple[int, bool]:
    """Bytes under folder (stops after max_files; True when complete)."""
    total, n = 0, 0
    for root, _dirs, files in os.walk(folder):
        for f in files:
            n += 1
            if n > max_files:
                return total, False
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total, True


def _gb(n: float) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MB"


def check_disk(cfg) -> Check:
    out = pathlib.Path(cfg.output_dir)
    where = _existing(out)
    free = shutil.disk_usage(where).free
    details = {"output": str(out), "free_bytes": free}
    measured = ""
    for folder in (out, REPO_ROOT / "outputs" / "census"):
        runs = len(list((folder / "logs").glob("run-*.log"))) if folder.is_dir() else 0
        if runs:
            size, complete = _size(folder)
            details.update(measured=str(folder), measured_bytes=size, runs=runs)
            measured = (f"; {_show(folder)} holds {'' if complete else '>= '}{_gb(size)} after "
                        f"{runs} run{'s' if runs > 1 else ''}")
            break
    finding = f"{_gb(free)} free for {_show(out)}{measured}"
    fix = f"free space on the disk of {_show(where)}, or pass --output DIR on another disk"
    if free < DISK_FAIL:
        return Check("disk", FAIL, f"{finding} (< {_gb(DISK_FAIL)}: TFX and Beam write "
                     "artifacts and temporary files there)", fix, details)
    if free < DISK_WARN:
        return Check("disk", WARN, f"{finding} (< {_gb(DISK_WARN)})", fix, details)
    return Check("disk", OK, finding, details=details)


# -- the command -----------------------------------------------------------------------------
def _safely(name: str, check: Callable[[], Check]) -> Check:
    """A check that itself breaks is a FAIL line, never a traceback."""
    try:
        return check()
    except Exception as e:
        return Check(name, FAIL, f"the check failed: {type(e).__name__}: {e}")


def run_checks(load_config: Callable[[], Any], config_file: str, *,
               locks: Iterable[pathlib.Path] | None = None, imports: bool = False) -> list[Check]:
    locks = list(locks) if locks else list(LOCKS)
    checks = [_safely("python", check_python)]
    dists = installed()
    lock, pins = check_lock(dists, locks)
    checks.append(_safely("glibc", lambda: check_glibc(dists, pins)))
    checks.append(lock)
    checks.append(_safely("imports", (lambda: check_imports()) if imports else
                          (lambda: check_core(dists, pins))))
    checks += [_safely("java", check_java), _safely("chromium", check_chromium),
               _safely("mariadb", check_mariadb)]
    try:
        cfg = load_config()
    except Exception as e:  # ConfigError, or what a broken environment raises on loading
        text = str(e) if config_file in str(e) else f"{config_file}: {e}"
        fix = ("correct the config file (or pick --dataset census)"
               if type(e).__name__ == "ConfigError" else sync_fix())
        checks.append(Check("config", FAIL, text, fix))
        return checks
    checks.append(_safely("store", lambda: check_store(cfg, config_file)))
    checks.append(_safely("disk", lambda: check_disk(cfg)))
    return checks


def render(checks: list[Check], config_file: str, seconds: float) -> str:
    fails = sum(c.status == FAIL for c in checks)
    warns = sum(c.status == WARN for c in checks)
    lines = [f"fairway doctor (config {config_file})", *(c.line() for c in checks)]
    verdict = (f"{fails} FAIL, {warns} warn" if fails else
               f"no failures, {warns} warning{'s' if warns != 1 else ''}" if warns else
               "everything ok")
    lines.append(f"{verdict} ({seconds:.1f}s)")
    return "\n".join(lines)


def to_json(checks: list[Check], config_file: str, seconds: float) -> str:
    status = ("fail" if any(c.status == FAIL for c in checks) else
              "warn" if any(c.status == WARN for c in checks) else "ok")
    return json.dumps({"config": config_file, "status": status, "seconds": round(seconds, 2),
                       "checks": [c.to_json() for c in checks]}, indent=2, default=str)


def config_file(args) -> str:
    """The config in use, for messages: --config, or the preset's file."""
    if getattr(args, "config", None):
        return args.config
    name = getattr(args, "dataset", None) or "census"
    preset = REPO_ROOT / "pipeline" / "presets" / f"{name}.toml"
    return _show(preset) if preset.is_file() else f"--dataset {name}"


def run(args, load_config: Callable[[], Any]) -> bool:
    """Print the checks (text or --json); True when none failed."""
    start = time.monotonic()
    where = config_file(args)
    checks = run_checks(load_config, where, locks=args.lock, imports=args.imports)
    seconds = time.monotonic() - start
    print(to_json(checks, where, seconds) if args.json else render(checks, where, seconds))
    return not any(c.status == FAIL for c in checks)


if __name__ == "__main__":  # `python -m runners.doctor` when the `fairway` script itself fails
    try:
        from runners import cli
    except Exception as e:  # the CLI's own imports are broken: check the rest without a config
        import argparse

        broken = f"the config cannot be loaded (runners.cli: {type(e).__name__}: {e})"

        def _no_config():
            raise RuntimeError(broken)

        flags = argparse.Namespace(config=None, dataset=None, lock=None,
                                   imports="--imports" in sys.argv, json="--json" in sys.argv)
        sys.exit(0 if run(flags, _no_config) else 1)
    sys.exit(cli.main(["doctor", *sys.argv[1:]]))
