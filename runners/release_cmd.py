"""`fairway models | promote | rollback | approve | history`: the registry's commands (the
registry itself is release/registry.py). Each change is recorded in ML Metadata and rewrites the
routing file that `fairway serve --registry` follows within a fraction of a second."""
from __future__ import annotations

import argparse
import json
import time
from typing import Any, Callable

from pipeline.config import PipelineConfig


def add_parsers(sub, add_config_args: Callable[[argparse.ArgumentParser], None]) -> None:
    def who(p):
        p.add_argument("--by", help="who makes the change (default: the OS user)")
        p.add_argument("--reason", default="", help="why (recorded in the audit trail)")

    models = sub.add_parser("models", help="the registered versions: aliases, metrics, fairness "
                                           "gap, blessing and the run that produced each")
    add_config_args(models)
    models.add_argument("--json", action="store_true", help="machine-readable output")

    promote = sub.add_parser("promote", help="point an alias (production, canary, shadow, "
                                             "candidate, challenger, or your own) at a version")
    add_config_args(promote)
    promote.add_argument("version", type=int, help="the version (a folder name under the "
                                                   "Pusher's output)")
    promote.add_argument("--to", required=True, metavar="ALIAS", help="the alias")
    promote.add_argument("--fraction", type=float, metavar="F",
                         help="share of unpinned traffic for canary (default 0.1) or "
                              "challenger (default 0.5)")
    promote.add_argument("--force", action="store_true",
                         help="allow an unblessed version on a live alias (needs --reason)")
    who(promote)

    rollback = sub.add_parser("rollback", help="give an alias back to its previous holder "
                                               "(each rollback goes one holder further back)")
    add_config_args(rollback)
    rollback.add_argument("alias", nargs="?", default="production",
                          help="the alias (default production)")
    who(rollback)

    remove = sub.add_parser("unset", help="remove an alias (e.g. end a canary or a shadow)")
    add_config_args(remove)
    remove.add_argument("alias")
    who(remove)

    approve = sub.add_parser("approve", help="the human in the loop: put the candidate "
                                             "waiting for approval into production")
    add_config_args(approve)
    approve.add_argument("version", type=int)
    who(approve)

    history = sub.add_parser("history", help="the audit trail of alias changes: when, who, "
                                             "why, from which version to which")
    add_config_args(history)
    history.add_argument("--alias", help="only this alias")
    history.add_argument("--json", action="store_true", help="machine-readable output")


def _utc(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds)) if seconds else "-"


def _num(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else "-"


def describe(cfg: PipelineConfig) -> list[dict[str, Any]]:
    """Every version with its aliases, the evaluation of the run that pushed it, and lineage."""
    from pipeline import metadata
    from release import registry

    out = []
    for v in registry.Registry(cfg).versions():
        row = {"version": v.number, "aliases": v.aliases, "blessed": v.blessed, "run": v.run,
               "pushed_utc": _utc(v.pushed_at), "path": v.path, "present": v.exists,
               "auc": None, "fpr_gap": None, "pushed_by_artifact": v.artifact_id}
        if v.run:
            try:
                overall = metadata.run_summary(cfg, v.run)["metrics"].get("Overall", {})
            except (LookupError, OSError, ValueError):
                overall = {}
            row["auc"] = overall.get("auc")
            row["fpr_gap"] = overall.get("false_positive_rate_gap")
        out.append(row)
    return out


def models(cfg: PipelineConfig, as_json: bool) -> str:
    rows = describe(cfg)
    if as_json:
        return json.dumps(rows, indent=2)
    if not rows:
        return "no versions yet: `fairway run` pushes the first"
    lines = [f"{'version':>12}  {'aliases':<24} {'blessed':<8} {'auc':>7} {'fpr gap':>8}  "
             f"{'pushed (UTC)':<19}  run"]
    for r in rows:
        lines.append(f"{r['version']:>12}  {','.join(r['aliases']) or '-':<24} "
                     f"{'yes' if r['blessed'] else 'NO':<8} {_num(r['auc']):>7} "
                     f"{_num(r['fpr_gap']):>8}  {r['pushed_utc']:<19}  {r['run'] or '-'}"
                     + ("" if r["present"] else "  (folder gone)"))
    return "\n".join(lines)


def history(cfg: PipelineConfig, alias: str | None, as_json: bool) -> str:
    from release import registry

    changes = registry.Registry(cfg).history(alias)
    if as_json:
        return json.dumps([c.to_dict() for c in changes], indent=2)
    if not changes:
        return "no alias changes yet"
    return "\n".join(
        f"{_utc(c.time)}  {c.alias:<11} {_ver(c.previous):>12} -> {_ver(c.version):<12} "
        f"{c.action:<8} by {c.by}" + (f" ({c.fraction:.0%} of traffic)" if c.fraction else "")
        + (f": {c.reason}" if c.reason else "") for c in changes)


def _ver(v: int | None) -> str:
    return "-" if v is None else str(v)


def _said(c) -> str:
    return (f"{c.alias}: {_ver(c.previous)} -> {_ver(c.version)} ({c.action} by {c.by}; "
            f"`fairway serve --registry` follows within a second)")


def run(cfg: PipelineConfig, args) -> int:
    from release import registry

    if args.command == "models":
        print(models(cfg, args.json))
        return 0
    if args.command == "history":
        print(history(cfg, args.alias, args.json))
        return 0
    reg = registry.Registry(cfg)
    if args.command == "promote":
        change = reg.promote(args.version, args.to, by=args.by, reason=args.reason,
                             force=args.force, fraction=args.fraction)
    elif args.command == "rollback":
        change = reg.rollback(args.alias, by=args.by, reason=args.reason)
    elif args.command == "unset":
        change = reg.remove(args.alias, by=args.by, reason=args.reason)
    else:
        change = reg.approve(args.version, by=args.by, reason=args.reason)
    print(_said(change))
    return 0


def after_run(cfg: PipelineConfig) -> str | None:
    """The push policy, applied to the version the run just pushed: the newest version pushed
    into this output's serving folder that the registry has not seen (a cached re-run pushed
    nothing new; another run sharing the store pushes into its own folder). Returns the line
    to print, or None."""
    from release import registry

    reg = registry.Registry(cfg)
    seen = {c.version for c in reg.history()}
    new = [v for v in reg.versions() if v.blessed and v.exists and v.number not in seen]
    if not new:
        return None
    version, policy = new[-1].number, cfg.release.push_policy
    for attempt in range(3):  # another run's push (one store) may win a race: apply again
        try:
            change = reg.after_push(version, policy, run=new[-1].run)
            break
        except registry.ConflictError:
            if attempt == 2:
                raise
    if policy == "auto":
        back = f"; `fairway rollback` returns to {change.previous}" if change.previous else ""
        return f"version {version} is in production (push policy auto{back})"
    if policy == "manual":
        return f"version {version} waits for approval (push policy manual): " \
               f"`fairway approve {version} --reason ...`"
    return f"version {version} is the candidate (push policy canary): `fairway rollout " \
           f"{version}` steps it through {', '.join(f'{s}%' for s in cfg.release.canary_steps)}"
