"""`fairway gc` and `fairway metadata backup|restore`: the commands; the logic lives in
release/gc.py (what to delete, which needs the registry) and pipeline/store_backup.py."""
from __future__ import annotations

import argparse
import json
import pathlib
import re

_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """`30d`, `12h`, `45m`, `2w`, `90s` -> seconds."""
    match = _AGE.fullmatch(text.strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number and a unit (s, m, h, d "
                                         f"or w), e.g. 30d or 12h; got {text!r}")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1 (the newest "
                                         f"run is always kept), got {text!r}")
    return value


def add_parsers(sub, add_config_args) -> None:
    gc = sub.add_parser("gc", help="delete the files of old artifacts nothing uses any more "
                                   "and mark them DELETED in ML Metadata (a dry run unless "
                                   "--yes)")
    add_config_args(gc)
    gc.add_argument("--keep-runs", type=_at_least_one, default=5, metavar="N",
                    help="keep what the N newest finished runs used or produced "
                         "(default 5)")
    gc.add_argument("--older-than", type=parse_age, metavar="D",
                    help="also keep the runs younger than D (e.g. 30d, 12h): a run's artifacts "
                         "go only when it is both beyond the N newest and older than D")
    gc.add_argument("--yes", action="store_true",
                    help="delete (default: a dry run that says what it would delete and why "
                         "the rest is kept)")
    gc.add_argument("--json", action="store_true", help="machine-readable output")

    meta = sub.add_parser("metadata", help="back up or restore the ML Metadata store (SQLite, "
                                           "MySQL or MariaDB)")
    actions = meta.add_subparsers(dest="metadata_command", required=True, metavar="ACTION")
    backup = actions.add_parser("backup", help="a consistent copy of the store and a manifest "
                                               "(pipeline, backend, schema version, counts)")
    add_config_args(backup)
    backup.add_argument("--to", metavar="DIR",
                        help="a new folder for the backup (default: "
                             "<output>/backups/metadata-<UTC time>)")
    restore = actions.add_parser("restore", help="restore a backup of this pipeline into the "
                                                 "config's store (empty unless --force)")
    add_config_args(restore)
    restore.add_argument("backup", metavar="DIR", help="a folder `fairway metadata backup` "
                                                       "wrote")
    restore.add_argument("--force", action="store_true",
                         help="replace the contents of a store that is not empty")


def _counts(manifest: dict) -> str:
    from pipeline.store_backup import COUNTED

    return ", ".join(f"{manifest['counts'][k]} {k}" for k in COUNTED)


def run(cfg, args) -> int:
    from pipeline import store_backup

    if args.command == "gc":
        from release import gc

        plan = gc.plan(cfg, args.keep_runs, args.older_than)
        result = gc.collect(cfg, plan) if args.yes else None
        print(json.dumps(gc.to_dict(plan, result), indent=2, sort_keys=True) if args.json
              else gc.text(plan, result))
        if result and result.skipped:
            raise gc.GcError(f"{len(result.skipped)} artifact(s) not deleted (listed above)")
        return 0
    if args.metadata_command == "backup":
        m = store_backup.backup(cfg, pathlib.Path(args.to) if args.to else None)
        print(f"backed up {m['source']} ({m['backend']}, ML Metadata schema version "
              f"{m['schema_version']}, pipeline {m['pipeline']}): {_counts(m)}\n"
              f"  -> {m['path']} ({m['file']}, {m['bytes']:,} bytes)")
        return 0
    m = store_backup.restore(cfg, pathlib.Path(args.backup), force=args.force)
    print(f"restored {args.backup} (pipeline {m['pipeline']}, taken {m['created']} from "
          f"{m['source']}) into {m['store']}: {_counts(m)}")
    return 0
