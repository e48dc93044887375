"""The ML Metadata store as a database: its size, a consistent backup, and a restore.

ML Metadata has no export API, so the copy is made at the database level, one way per backend:

- SQLite: sqlite3's online backup API (a consistent copy while runs write), into
  `metadata.sqlite`;
- MySQL or MariaDB: a logical SQL dump, `metadata.sql`, taken inside one consistent-snapshot
  transaction over PyMySQL (installed with apache-beam[gcp], pinned in requirements/lock.txt).
  It needs no client program and no password on a command line, and it loads by hand too
  (`mariadb DB < metadata.sql`).

Beside the copy, `manifest.json` says what it is: the pipeline, the backend, ML Metadata's
schema version, when, row counts and a checksum. A restore checks all of it before it writes.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import pathlib
import sqlite3
import tempfile
from typing import Any, Iterator

from pipeline import metadata
from pipeline.config import PipelineConfig
from pipeline.errors import FairwayError

FORMAT, FORMAT_VERSION = "fairway-metadata-backup", 1
MANIFEST = "manifest.json"
SQLITE, MYSQL = "sqlite", "mysql"
DATA_FILE = {SQLITE: "metadata.sqlite", MYSQL: "metadata.sql"}
# ML Metadata's own tables (identical on both backends) that the manifest counts.
COUNTED = {"artifacts": "Artifact", "executions": "Execution", "contexts": "Context",
           "events": "Event"}
_INSERT_BYTES = 1 << 20  # per INSERT statement: far below MySQL's default max_allowed_packet


class BackupError(FairwayError):
    """A backup that cannot be taken or restored; the message names the file or the store."""


def backend(cfg: PipelineConfig) -> str:
    return MYSQL if cfg.mysql else SQLITE


def describe(cfg: PipelineConfig) -> str:
    """Where the store is, for messages (no secret)."""
    return cfg.mysql.describe() if cfg.mysql else str(cfg.metadata_path)


# --- connections ------------------------------------------------------------------------------

@contextlib.contextmanager
def _mysql(cfg: PipelineConfig) -> Iterator[Any]:
    import pymysql

    m = cfg.mysql
    try:
        # As bytes: PyMySQL would encode a str password as latin-1, ML Metadata sends UTF-8.
        conn = pymysql.connect(host=m.host, port=m.port, user=m.user,
                               password=m.password().encode(), database=m.database,
                               charset="utf8mb4", autocommit=False)
    except pymysql.MySQLError as e:
        # Unreachable, wrong password, no privilege: the user's to fix (no secret in e).
        raise BackupError(f"ML Metadata at {m.describe()} (from {m.src}): {e}") from None
    try:
        yield conn
    except pymysql.MySQLError as e:
        raise BackupError(f"ML Metadata at {m.describe()}: {e}") from None
    finally:
        conn.close()


@contextlib.contextmanager
def _sqlite(path: pathlib.Path, read_only: bool = True) -> Iterator[sqlite3.Connection]:
    uri = f"{pathlib.Path(path).resolve().as_uri()}?mode={'ro' if read_only else 'rwc'}"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as e:
        raise BackupError(f"{path}: cannot open the SQLite store: {e}") from None
    try:
        yield conn
    except sqlite3.Error as e:  # not a database, damaged, locked
        raise BackupError(f"{path}: {e}") from None
    finally:
        conn.close()


def _tables(cursor, kind: str) -> set[str]:
    if kind == SQLITE:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        cursor.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
    return {row[0] for row in cursor.fetchall()}


def _facts(cursor, kind: str) -> dict[str, Any]:
    """Schema version, row counts and the pipelines in a store (DB-API cursor); an empty
    database (no ML Metadata tables yet) has zero rows and no version."""
    tables = _tables(cursor, kind)
    counts = {}
    for name, table in COUNTED.items():
        if table in tables:
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            counts[name] = int(cursor.fetchone()[0])
        else:
            counts[name] = 0
    version, pipelines = None, []
    if "MLMDEnv" in tables:
        cursor.execute("SELECT schema_version FROM MLMDEnv")
        row = cursor.fetchone()
        version = int(row[0]) if row else None
    if {"Context", "Type"} <= tables:
        cursor.execute("SELECT c.name FROM Context c JOIN Type t ON c.type_id = t.id "
                       "WHERE t.name = 'pipeline' ORDER BY c.name")
        pipelines = [row[0] for row in cursor.fetchall()]
    return {"schema_version": version, "counts": counts, "pipelines": pipelines}


def facts(cfg: PipelineConfig) -> dict[str, Any]:
    """The store's schema version, row counts and pipelines, as a manifest records them."""
    if cfg.mysql:
        with _mysql(cfg) as conn:
            return _facts(conn.cursor(), MYSQL)
    if not cfg.metadata_path.exists():
        return {"schema_version": None, "counts": dict.fromkeys(COUNTED, 0), "pipelines": []}
    with _sqlite(cfg.metadata_path) as conn:
        return _facts(conn.cursor(), SQLITE)


def size(cfg: PipelineConfig) -> int:
    """Bytes the store takes: the SQLite file (with its journal), or the database's tables and
    indexes as the MySQL server counts them."""
    if cfg.mysql:
        with _mysql(cfg) as conn:
            cur = conn.cursor()
            cur.execute("SELECT COALESCE(SUM(data_length + index_length), 0) FROM "
                        "information_schema.tables WHERE table_schema = %s",
                        (cfg.mysql.database,))
            return int(cur.fetchone()[0])
    path = cfg.metadata_path
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-journal"),
                                         path.with_name(path.name + "-wal")) if p.exists())


def library_schema_version() -> int:
    """The schema version this ML Metadata library writes (it opens no other without a
    migration): read from a new, empty store."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "probe.sqlite"
        metadata_store.MetadataStore(metadata_store_pb2.ConnectionConfig(
            sqlite=metadata_store_pb2.SqliteMetadataSourceConfig(filename_uri=str(path))))
        with _sqlite(path) as conn:
            return _facts(conn.cursor(), SQLITE)["schema_version"]


# --- backup -----------------------------------------------------------------------------------

def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _dump_mysql(conn, out) -> None:
    """Every table as DROP, CREATE and INSERT statements, one statement per line except the
    CREATE (PyMySQL escapes line breaks inside values), each ending with ';'."""
    import pymysql

    cur = conn.cursor()
    out.write("SET NAMES utf8mb4;\nSET FOREIGN_KEY_CHECKS = 0;\n")
    for table in sorted(_tables(cur, MYSQL)):
        cur.execute(f"SHOW CREATE TABLE `{table}`")
        out.write(f"DROP TABLE IF EXISTS `{table}`;\n{cur.fetchone()[1]};\n")
        rows = conn.cursor(pymysql.cursors.SSCursor)  # streamed: a large store fits anyway
        rows.execute(f"SELECT * FROM `{table}`")
        batch, size = [], 0
        for row in rows:
            values = "(" + ",".join(conn.escape(v) for v in row) + ")"
            batch.append(values)
            size += len(values)
            if size > _INSERT_BYTES:
                out.write(f"INSERT INTO `{table}` VALUES {','.join(batch)};\n")
                batch, size = [], 0
        if batch:
            out.write(f"INSERT INTO `{table}` VALUES {','.join(batch)};\n")
        rows.close()
    out.write("SET FOREIGN_KEY_CHECKS = 1;\n")


def backup(cfg: PipelineConfig, dest: pathlib.Path | None = None) -> dict[str, Any]:
    """A consistent copy of the store and its manifest in the new folder `dest` (default
    `<output>/backups/metadata-<UTC time>`); returns the manifest, with `path`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    dest = pathlib.Path(dest) if dest else \
        cfg.command_dir("backups") / f"metadata-{now:%Y%m%d-%H%M%S}"
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest}: exists and is not empty; choose a new folder with --to")
    kind = backend(cfg)
    data = dest / DATA_FILE[kind]
    if kind == MYSQL:
        with _mysql(cfg) as conn:
            cur = conn.cursor()
            # One snapshot for the dump and the facts: runs may write meanwhile (InnoDB).
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            about = _facts(cur, MYSQL)
            dest.mkdir(parents=True, exist_ok=True)
            with data.open("w", encoding="utf-8") as out:
                out.write(f"-- ML Metadata of {cfg.pipeline_name} from {describe(cfg)}, "
                          f"{now:%Y-%m-%dT%H:%M:%SZ}; see {MANIFEST}\n")
                _dump_mysql(conn, out)
            conn.rollback()
    else:
        if not cfg.metadata_path.exists():
            raise BackupError(f"{cfg.metadata_path}: no metadata store to back up")
        dest.mkdir(parents=True, exist_ok=True)
        with _sqlite(cfg.metadata_path) as src, _sqlite(data, read_only=False) as copy:
            src.backup(copy)  # consistent even while a run writes
            about = _facts(copy.cursor(), SQLITE)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "pipeline": cfg.pipeline_name, **about, "backend": kind,
                "source": describe(cfg), "created": f"{now:%Y-%m-%dT%H:%M:%SZ}",
                "file": data.name, "bytes": data.stat().st_size, "sha256": _sha256(data)}
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return {**manifest, "path": str(dest)}


# --- restore ----------------------------------------------------------------------------------

def read_manifest(source: pathlib.Path) -> dict[str, Any]:
    path = source / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise BackupError(f"{source}: not a Fairway metadata backup (cannot read {MANIFEST}: "
                          f"{getattr(e, 'strerror', None) or e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: not a Fairway metadata backup manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{path}: backup format version {manifest.get('format_version')}; "
                          f"this Fairway reads version {FORMAT_VERSION}")
    return manifest


def check(cfg: PipelineConfig, source: pathlib.Path, manifest: dict[str, Any]) -> pathlib.Path:
    """Why the backup in `source` cannot go into the config's store (raised), else its data
    file: the pipeline, the backend, ML Metadata's schema version and the checksum."""
    where = source / MANIFEST
    theirs, ours = manifest.get("pipeline"), cfg.pipeline_name
    if theirs != ours or (manifest.get("pipelines") and ours not in manifest["pipelines"]):
        raise BackupError(f"{where}: a backup of pipeline {theirs!r} (store holds "
                          f"{manifest.get('pipelines')}); this config's pipeline is {ours!r}: "
                          "restore it with the config of its own pipeline")
    if manifest.get("backend") != backend(cfg):
        raise BackupError(f"{where}: a {manifest.get('backend')} backup, but the config's store "
                          f"is {backend(cfg)} ({describe(cfg)}); a backup restores into a store "
                          "of the same kind only")
    library = library_schema_version()
    if manifest.get("schema_version") not in (None, library):
        raise BackupError(f"{where}: ML Metadata schema version {manifest['schema_version']}; "
                          f"this ML Metadata library uses version {library} (restore with the "
                          "Fairway that made the backup)")
    data = source / str(manifest.get("file"))
    if not data.is_file():
        raise BackupError(f"{data}: the backup's data file is missing")
    if _sha256(data) != manifest.get("sha256"):
        raise BackupError(f"{data}: checksum differs from {where}: the file is damaged or was "
                          "changed")
    return data


def _refuse_unless_empty(cfg: PipelineConfig, force: bool) -> None:
    counts = facts(cfg)["counts"]
    rows = {k: v for k, v in counts.items() if v and k != "events"}
    if rows and not force:
        said = ", ".join(f"{v} {k}" for k, v in rows.items())
        raise BackupError(f"{describe(cfg)}: the store is not empty ({said}); restore into an "
                          "empty store, or pass --force to replace its contents")


def _statements(path: pathlib.Path) -> Iterator[str]:
    """The statements of a dump written by _dump_mysql: a statement ends with a line that ends
    with ';' (line breaks inside values are escaped)."""
    buffer: list[str] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not buffer and (line.startswith("--") or not line.strip()):
                continue
            buffer.append(line)
            if line.rstrip().endswith(";"):
                yield "".join(buffer).rstrip().rstrip(";")
                buffer = []
    if buffer:
        raise BackupError(f"{path}: ends inside a statement: the dump is incomplete")


def _load_mysql(cfg: PipelineConfig, data: pathlib.Path) -> None:
    import pymysql

    with _mysql(cfg) as conn:
        cur = conn.cursor()
        try:
            for statement in _statements(data):
                cur.execute(statement)
            conn.commit()
        except pymysql.MySQLError as e:
            # DDL commits as it goes in MySQL: no transaction covers a whole restore.
            raise BackupError(f"{describe(cfg)}: restoring {data} failed, the store may be half "
                              f"restored (run the restore again with --force): {e}") from None


def restore(cfg: PipelineConfig, source: pathlib.Path, force: bool = False) -> dict[str, Any]:
    """Restore the backup folder `source` into the config's store; returns the manifest, with
    `restored` (the counts read back from the store) and `store`."""
    source = pathlib.Path(source)
    manifest = read_manifest(source)
    data = check(cfg, source, manifest)
    if cfg.mysql:
        metadata.store(cfg)  # ML Metadata creates the database if the user may, as a run does
    _refuse_unless_empty(cfg, force)
    if cfg.mysql:
        _load_mysql(cfg, data)
    else:
        cfg.metadata_path.parent.mkdir(parents=True, exist_ok=True)
        # The backup API writes through SQLite (locks, journal): never a torn file.
        with _sqlite(data) as src, _sqlite(cfg.metadata_path, read_only=False) as target:
            src.backup(target)
    restored = facts(cfg)
    if restored["counts"] != manifest["counts"]:
        raise BackupError(f"{describe(cfg)}: restored {restored['counts']}, but {source} "
                          f"holds {manifest['counts']}")
    return {**manifest, "restored": restored["counts"], "store": describe(cfg)}
