"""`fairway schema propose | accept`: a change of the curated schema as a reviewed change. The
logic is data/schema_evolution.py; here: the arguments, the monitor's evidence (served traffic,
which only a runner may read next to the data package) and the console."""
from __future__ import annotations

import argparse
from typing import Callable

from pipeline.config import PipelineConfig


def add_parsers(sub, add_config_args: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("schema", help="propose a change of the curated schema from refused data "
                                      "(with the reason for each change), and accept it as a "
                                      "new version")
    actions = p.add_subparsers(dest="schema_action", required=True, metavar="ACTION")
    propose = actions.add_parser(
        "propose", help="write <schema>.proposed.pbtxt and .md next to the curated schema: "
                        "TFDV's fix for each anomaly of a run's data (or of served traffic), "
                        "each change with its reason and evidence")
    add_config_args(propose)
    source = propose.add_mutually_exclusive_group()
    source.add_argument("--from-run", metavar="RUN_ID", default="latest",
                        help="the run whose data to accept (default: latest), e.g. one the "
                             "DataGate refused")
    source.add_argument("--from-monitor", nargs="?", const="", metavar="LOGS",
                        help="the latest window `fairway monitor` found schema anomalies in "
                             "(its requests read from LOGS; default: the logs the last monitor "
                             "run read)")
    accept = actions.add_parser(
        "accept", help="make the proposal the curated schema: kept as versions/<schema>.vN, "
                       "written over the curated file, recorded in ML Metadata")
    add_config_args(accept)
    accept.add_argument("--force", action="store_true",
                        help="accept a change of the label, of a feature's type, or a removed "
                             "or added feature (needs --reason)")
    accept.add_argument("--reason", default="", help="why (kept with the version)")
    accept.add_argument("--by", help="who accepts (default: the OS user)")


def _same_config(args) -> str:
    """The config arguments of this command, to repeat in the next one."""
    where = [f"--{k} {getattr(args, k)}" for k in ("config", "dataset", "output")
             if getattr(args, k)]
    return " ".join(["fairway schema accept", *where])


def served_evidence(cfg: PipelineConfig, logs: str | None):
    """The requests of the newest window the monitor's history flags with schema anomalies,
    as TFDV statistics of served traffic (validated in the SERVING environment)."""
    from data import schema_evolution as evolution
    from monitoring import anomalies, history, requests
    from pipeline import metadata

    h = history.History(cfg, cfg.model_name, cfg.command_dir("monitor") / "history")
    flagged = [r for r in h.rows() if r["kind"] == "anomaly"]
    if not flagged:
        raise evolution.SchemaEvolutionError(
            "the monitor's history has no schema anomaly of served traffic; `fairway monitor "
            "--requests LOGS` records them")
    window = max(flagged, key=lambda r: r["end"])
    if not logs:  # the logs the newest monitor run read
        runs = h.store.get_executions_by_context(h.context.id)
        logs = metadata.execution_property(max(runs, key=lambda e: e.id), "requests")
    frame = requests.read(logs)
    ids = frame["_request_id"].tolist()
    if window.get("first_id") not in ids or window.get("last_id") not in ids:
        raise evolution.SchemaEvolutionError(
            f"{logs}: the requests of window {window['window']} are not there (rotated or "
            "moved?); name the logs that hold them with --from-monitor LOGS")
    part = frame.iloc[ids.index(window["first_id"]):ids.index(window["last_id"]) + 1]
    schema = evolution.parse(cfg.dataset.schema_file.read_text(), cfg.dataset.schema_file)
    return evolution.Evidence(
        f"the monitor's window {window['window']} ({len(part)} requests in {logs})",
        {"served": anomalies.serving_statistics(part, schema)}, "SERVING")


def _propose(cfg: PipelineConfig, args, say) -> int:
    from data import schema_evolution as evolution

    evidence = (served_evidence(cfg, args.from_monitor) if args.from_monitor is not None
                else evolution.run_evidence(cfg, args.from_run))
    proposal = evolution.write_proposal(cfg, evidence)
    if not proposal.written:
        say(f"nothing to propose: {cfg.dataset.schema_file} already accepts the data of "
            f"{evidence.source}")
    else:
        say(f"proposed change of {proposal.paths.curated} from {evidence.source}:")
        for change in proposal.changes:
            say(f"  {change}" + ("  [needs --force and --reason]" if change.needs_force else ""))
    if proposal.notes:
        say("not fixed by a schema change:")
        for note in proposal.notes:
            say(f"  {note}")
    if proposal.written:
        forced = any(c.needs_force for c in proposal.changes)
        say(f"wrote {proposal.paths.proposed} and {proposal.paths.markdown}")
        say(f"review them, then: {_same_config(args)}"
            + (" --force --reason TEXT" if forced else ""))
    return 0


def _accept(cfg: PipelineConfig, args, say) -> int:
    from data import schema_evolution as evolution
    from release import registry

    done = evolution.accept(cfg, by=registry.user(args.by), force=args.force,
                            reason=args.reason)
    p = evolution.paths(cfg)
    kept = (f"; the schema before it kept as {p.version(done.saved_before)}"
            if done.saved_before else "")
    say(f"accepted: {p.curated} is now version {done.version} ({done.path}{kept}); ML "
        f"Metadata Schema artifact {done.artifact_id}")
    for change in done.changes:
        say(f"  {change}")
    say("the next `fairway run` uses it")
    return 0


def run(cfg: PipelineConfig, args) -> int:
    from runners.progress import Progress

    # TensorFlow's start-up lines (TFDV imports it) go to the log; the console keeps ours.
    with Progress(cfg.log_path("schema", ".log")) as progress:
        action = _propose if args.schema_action == "propose" else _accept
        return action(cfg, args, progress.echo)
