"""The `fairway` command line."""
from __future__ import annotations

import argparse
import sys

from pipeline import config as config_lib
from pipeline.errors import FairwayError

EXIT_USAGE, EXIT_FAILED, EXIT_ALERT = 2, 1, 3


def _add_config_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--dataset", help="a preset: census (default) or taxi")
    src.add_argument("--config", metavar="FILE", help="a TOML config for your own dataset")
    p.add_argument("--output", metavar="DIR", help="output folder (default: outputs/<dataset>)")
    p.add_argument("--data", metavar="DIR", help="CSV files of the same shape as the dataset")


def _config(args, **extra) -> config_lib.PipelineConfig:
    kwargs = dict(output_dir=args.output, data_dir=args.data, **extra)
    if args.config:
        return config_lib.load(args.config, **kwargs)
    return config_lib.preset(args.dataset or "census", **kwargs)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


MAX_SEEDS = 20  # `compare --seeds`: each seed is a pipeline run (~3 min on census, 2 cores)


def _seeds(text: str) -> int:
    value = _positive(text)
    if value > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_SEEDS} seeds, got {value}")
    return value


def _writer(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    """A command that reads a run (config args) and writes files (--to)."""
    p = sub.add_parser(name, help=help_text)
    _add_config_args(p)
    p.add_argument("--to", metavar="DIR", help=f"where to write (default: <output>/{name})")
    return p


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fairway", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the whole pipeline with LocalDagRunner (Beam "
                                     "components in-process, on Spark or on Dataflow)")
    _add_config_args(run)
    run.add_argument("--sample", type=_positive, metavar="N",
                     help="use a fixed random sample of N rows per split")
    run.add_argument("--train-steps", type=_positive, metavar="N", help="override training steps")
    run.add_argument("--no-cache", action="store_true", help="re-run every component")
    part = run.add_mutually_exclusive_group()
    part.add_argument("--from", dest="start_from", metavar="NODE",
                      help="re-execute NODE and everything downstream of it (no cache); the "
                           "other nodes' artifacts come from the latest run that completed "
                           "every node")
    part.add_argument("--resume", action="store_true",
                      help="finish the latest run after a crash or a failed component: reuse "
                           "every node it completed (unless its code or parameters changed "
                           "since) and start at the one that failed")
    run.add_argument("--runner", choices=("local", "spark", "dataflow"), default="local",
                     help="where the Beam components run: in-process (default), on Spark via "
                          "Beam's job server, or on Dataflow")
    spark = run.add_argument_group("--runner spark")
    spark.add_argument("--spark-master", metavar="URL",
                       help="spark://HOST:PORT of an existing standalone cluster (default: start "
                            "a local cluster on 127.0.0.1 and stop it afterwards)")
    spark.add_argument("--spark-ui", metavar="URL",
                       help="the master's web UI (default http://<master host>:8080)")
    spark.add_argument("--worker-pool", metavar="HOST:PORT",
                       help="the Beam worker pool every Spark worker reaches (default: start one "
                            "here; on a real cluster, a sidecar on each worker node)")
    spark.add_argument("--spark-job-server-jar", metavar="JAR",
                       help="Beam's Spark job server jar (default: the one matching the Beam "
                            "SDK, fetched and cached)")
    spark.add_argument("--timeout", type=_positive, metavar="SECONDS",
                       help="stop everything and fail after this long (default 3600)")
    dataflow = run.add_argument_group("--runner dataflow")
    dataflow.add_argument("--project", help="Google Cloud project")
    dataflow.add_argument("--region", help="Dataflow region, e.g. us-central1")
    dataflow.add_argument("--temp-location", metavar="GS_URL", help="gs://bucket/tmp")
    dataflow.add_argument("--image", help="the SDK container image built from the Dockerfile")
    dataflow.add_argument("--pipeline-root", metavar="GS_URL",
                          help="gs:// folder for the artifacts (workers read and write there)")
    dataflow.add_argument("--input-uri", metavar="GS_URL",
                          help="gs:// folder with the CSVs (train/ and eval/ subfolders)")

    comp = _writer(sub, "compile", "write the pipeline for another orchestrator: "
                                    "--target vertex (Vertex AI Pipelines / KFP v2 JSON)")
    comp.add_argument("--target", choices=("vertex",), required=True)
    comp.add_argument("--image", required=True,
                      help="the container image built from the Dockerfile")
    comp.add_argument("--pipeline-root", required=True, metavar="GS_URL",
                      help="gs:// folder for the artifacts")
    comp.add_argument("--input-uri", required=True, metavar="GS_URL",
                      help="gs:// folder with the CSVs (train/ and eval/ subfolders)")

    compare = sub.add_parser(
        "compare", help="train baseline / MinDiff teacher / student and compare them (fairness, "
                        "AUC, size, latency): Markdown, JSON and PNG")
    _add_config_args(compare)
    compare.add_argument("--sample", type=_positive, metavar="N",
                         help="use a fixed random sample of N rows per split")
    compare.add_argument("--train-steps", type=_positive, metavar="N",
                         help="override training steps")
    compare.add_argument("--seeds", type=_seeds, default=1, metavar="N",
                         help=f"train and score with training.seed = 1..N (at most {MAX_SEEDS}) "
                              "in <output>/compare/seeds, away from your own store and serving "
                              "folder; report mean, min, max and a 95 %% interval per value and "
                              "judge the targets on the mean and the worst seed (default 1: one "
                              "run, in the output folder)")

    _writer(sub, "deploy", "write TF Serving deployment files (models.config with stable/"
                           "canary labels, batching, monitoring, docker-compose, Kubernetes) for "
                           "the pushed model")

    serve = sub.add_parser(
        "serve", help="serve pushed models with TF Serving's REST and gRPC APIs on 127.0.0.1 "
                      "(lifecycle, warmup, canary/shadow, request logs, Prometheus)")
    _add_config_args(serve)
    models = serve.add_mutually_exclusive_group()
    models.add_argument("--model-dir", metavar="DIR",
                        help="a base path of numbered versions (default: the config's Pusher "
                             "output)")
    models.add_argument("--model-config-file", metavar="FILE",
                        help="a ModelServerConfig text proto, as real TF Serving reads")
    serve.add_argument("--model-name", help="name for --model-dir (default: the config's)")
    serve.add_argument("--version-policy", metavar="POLICY",
                       help="latest[:N] (default latest:1), all, or specific:V1,V2")
    serve.add_argument("--label", action="append", default=[], metavar="NAME=VERSION",
                       help="a version label, e.g. stable=1700000000 (repeatable); labelled "
                            "versions are loaded")
    models.add_argument("--registry", action="store_true",
                        help="follow the registry: load every version an alias names (and "
                             "production's rollback target), route by the aliases and their "
                             "traffic shares, and apply each promote/rollback live")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--rest-port", type=int, default=8501, help="0 turns REST off")
    serve.add_argument("--grpc-port", type=int, default=8500, help="0 turns gRPC off")
    serve.add_argument("--canary-fraction", type=float, default=0.0, metavar="F",
                       help="share of unpinned requests sent to the 'canary' label (0-1)")
    serve.add_argument("--shadow-label", metavar="LABEL",
                       help="a label whose version gets a copy of every unpinned request; its "
                            "answers are logged (needs --request-log-dir), never returned")
    serve.add_argument("--request-log-dir", metavar="DIR",
                       help="write sampled requests/responses as PredictionLog TFRecords here, "
                            "each with its arrival time and request id (the X-Request-Id "
                            "header or x-request-id gRPC metadata, else a new one)")
    serve.add_argument("--log-rotate-seconds", type=_positive, default=3600, metavar="S",
                       help="start a new request-log file every S seconds, on multiples of S "
                            "in UTC (default 3600: hourly files)")
    serve.add_argument("--log-sampling-rate", type=float, default=0.0, metavar="R",
                       help="share of requests logged (0-1; default 0)")
    serve.add_argument("--poll-seconds", type=float, default=1.0,
                       help="how often the base paths are listed for new versions")
    serve.add_argument("--load-retries", type=int, default=5,
                       help="retries of a failed version load (TF Serving: 5)")
    serve.add_argument("--load-retry-seconds", type=float, default=60.0,
                       help="wait between load retries (TF Serving: 60)")
    serve.add_argument("--no-warmup", action="store_true",
                       help="skip assets.extra/tf_serving_warmup_requests")
    serve.add_argument("--max-request-bytes", type=_positive, default=64 << 20,
                       help="largest REST body accepted (default 64 MiB)")
    serve.add_argument("--validate", choices=("off", "flag", "reject"), default="off",
                       help="check each request against the version's serving schema "
                            "(assets.extra/schema.pbtxt: types, domains, ranges, required "
                            "features): reject answers 400/INVALID_ARGUMENT naming the field, "
                            "flag serves it and logs and counts it; default off")

    predict = sub.add_parser(
        "predict", help="send rows from a CSV or JSON file to a TF Serving REST or gRPC API "
                        "(real TF Serving or `fairway serve`); prints one JSON line per row")
    predict.add_argument("rows", metavar="FILE", help="CSV with a header, a JSON list of "
                                                      "objects, or JSON lines")
    predict.add_argument("--model", required=True,
                         help="model name (the dataset's name, as `fairway serve` serves it)")
    predict.add_argument("--protocol", choices=("rest", "grpc"), default="rest")
    predict.add_argument("--host", default="127.0.0.1")
    predict.add_argument("--port", type=_positive,
                         help="default: 8501 for rest, 8500 for grpc")
    target = predict.add_mutually_exclusive_group()
    target.add_argument("--version", type=_positive, help="ask one version")
    target.add_argument("--label", help="ask the version behind a label, e.g. canary")
    predict.add_argument("--signature", default=None,
                         help="serving_default, or explain with --explain")
    predict.add_argument("--explain", action="store_true",
                         help="ask the model's explain signature: print the features that "
                              "moved each row's logit most from the training baseline")
    predict.add_argument("--top", type=_positive, default=5, metavar="N",
                         help="features per row with --explain (5)")
    predict.add_argument("--batch-size", type=_positive, default=64,
                         help="rows per request (default 64)")

    monitor = _writer(sub, "monitor", "score serving request logs window by window against "
                                      "the reference of the run that pushed the serving model "
                                      "(input, prediction and label drift, data quality, "
                                      "realized and estimated performance, a domain "
                                      "classifier); keeps a history in ML Metadata; exit 3 "
                                      "when a new window alerts")
    monitor.add_argument("--requests", required=True, metavar="LOGS",
                         help="a requests-*.tfrecord file or a folder of them (fairway serve "
                              "--request-log-dir)")
    monitor.add_argument("--window", default="1h", metavar="SIZE",
                         help="a duration (30m, 1h, 1d: windows aligned in UTC, scored once "
                              "closed) or a number of requests (5000); default 1h. --since "
                              "and --until select whole time windows")
    monitor.add_argument("--since", metavar="TIME",
                         help="only requests from this ISO-8601 time on (UTC unless given)")
    monitor.add_argument("--until", metavar="TIME", help="only requests before this time")
    monitor.add_argument("--grace", type=int, default=60, metavar="S",
                         help="a time window is scored S seconds after it ends, once the "
                              "server has written its last requests (default 60)")
    monitor.add_argument("-k", type=float, default=3.0,
                         help="alert at k standard deviations of the reference windows of the "
                              "same size (default 3)")
    monitor.add_argument("--baseline", dest="output", metavar="DIR",
                         help="the run's output folder (same as --output; default "
                              "outputs/<dataset>)")
    monitor.add_argument("--on-alert", action="store_true",
                         help="when an alert fires, run the pipeline (retraining, with its data "
                              "and drift gates) on --data, the newest span")
    monitor.add_argument("--sample", type=_positive, metavar="N",
                         help="retraining run: a sample of N rows per split")
    monitor.add_argument("--train-steps", type=_positive, metavar="N",
                         help="retraining run: override training steps")
    monitor.add_argument("--labels", metavar="CSV",
                         help="labels that arrived later: request_id,label (0/1); adds realized "
                              "AUC, accuracy, label drift and per-group rates, and re-scores "
                              "windows scored before their labels came")

    card = _writer(sub, "card", "a model card (self-contained HTML + JSON) of a pushed version "
                                "from ML Metadata and TFMA: intended use, data, evaluation, "
                                "fairness, MinDiff and distillation, lineage, blessing, "
                                "limitations")
    card.add_argument("version", nargs="?", metavar="VERSION",
                      help="a pushed version (default: the newest)")
    next(a for a in card._actions if a.dest == "to").help = \
        "where to write <VERSION>.html and .json (default: <output>/cards)"

    _writer(sub, "report", "a self-contained HTML report of the latest run (lineage, TFDV "
                           "statistics train vs eval, schema, anomalies, evaluation, error "
                           "analysis) plus an index of all reports")

    stats = sub.add_parser("stats", help="the statistics view (Facets Overview's tables, "
                                         "offline HTML) of splits, runs, CSVs, spans or "
                                         "request logs, side by side")
    _add_config_args(stats)
    stats.add_argument("source", nargs="?", metavar="A",
                       help="train | eval (the latest run's split), SPLIT@RUN_ID, RUN_ID, a "
                            "CSV file or span folder, logs:DIR, or a FeatureStats.pb "
                            "(default: train --compare eval)")
    stats.add_argument("--compare", nargs="+", metavar="B", help="more sources, overlaid")
    stats.add_argument("--window", type=_positive, metavar="N",
                       help="logs:DIR sources: the last N requests")
    stats.add_argument("--sort", choices=("name", "distance", "missing", "nonuniformity"),
                       help="initial order (default: distance with two or more sources)")
    stats.add_argument("--to", metavar="PATH", help="a .html file or a folder (default: "
                                                    "<output>/stats)")

    status = sub.add_parser("status", help="the latest run as recorded in ML Metadata")
    _add_config_args(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--cache", action="store_true",
                        help="each node: cached, or why it ran (code, parameter or input "
                             "changed since its previous execution)")

    doctor = sub.add_parser("doctor", help="check the platform (Python, glibc, the packages "
                                           "against the lock, the core stack, Java, Chromium, "
                                           "MariaDB, the metadata store, free disk) and print "
                                           "the fix for each problem")
    _add_config_args(doctor)
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument("--imports", action="store_true",
                        help="import tensorflow, apache_beam, tensorflow_model_analysis and "
                             "tfx.v1 in a child process (~40 s) instead of only finding them")
    doctor.add_argument("--lock", action="append", metavar="FILE",
                        help="compare with this lock (repeatable; default requirements/lock.txt "
                             "and requirements/fairness-indicators.txt)")

    data = sub.add_parser("data", help="obtain and verify a dataset without running, or write "
                                       "a new span of it (--new-span) for `run --data`")
    _add_config_args(data)
    data.add_argument("--new-span", metavar="DIR",
                      help="write DIR/{train,eval}/data.csv drawn from the dataset with --seed")
    data.add_argument("--rows", type=_positive, default=2000, help="rows per split (2000)")
    data.add_argument("--seed", type=int, default=2, help="seed of the new span (2)")
    data.add_argument("--inject-drift", nargs="?", const="all", metavar="WHAT",
                      choices=("all", "shift", "new-category"),
                      help="apply the config's [inject_drift] (shifted numbers, a new "
                           "category on a share of rows); WHAT: all (default), shift, or "
                           "new-category (a span whose only change is the new value, e.g. "
                           "for `fairway schema propose`)")
    data.add_argument("--category-fraction", type=float, metavar="F",
                      help="with --inject-drift: the share of rows given the new category "
                           "(default: the config's inject_drift.fraction)")
    from runners import feedback_cmd

    feedback_cmd.add_data_flags(data)
    feedback_cmd.add_label_queue_parser(sub, _add_config_args)

    from runners import release_cmd

    release_cmd.add_parsers(sub, _add_config_args)
    from runners import rollout_cmd

    rollout_cmd.add_rollout_parser(sub, _add_config_args)
    from runners import schema_cmd, store_cmd

    schema_cmd.add_parsers(sub, _add_config_args)
    store_cmd.add_parsers(sub, _add_config_args)

    init = sub.add_parser("init", help="write a config (TOML) and a curated schema for your own "
                                       "CSV data, decided from the data")
    init.add_argument("--csv", required=True, metavar="PATH",
                      help="a CSV file, a folder of CSVs, or a folder with train/ and eval/")
    init.add_argument("--label", required=True, metavar="COL", help="the column to predict")
    init.add_argument("--positive", metavar="VALUE",
                      help="the label value that is the positive class (1), for a label that "
                           "is not 0/1")
    init.add_argument("--sensitive", metavar="COL",
                      help="the sensitive attribute (a categorical column): turns on MinDiff "
                           "and the fairness gate")
    init.add_argument("--groups", metavar="A,B",
                      help="the protected and reference values of --sensitive")
    init.add_argument("--ignore", metavar="COL,COL", default="",
                      help="columns that are not features (ids, names, constants)")
    init.add_argument("--name", help="dataset name (default: from the file or folder name)")
    init.add_argument("--to", metavar="DIR", help="where to write NAME.toml and schema.pbtxt "
                                                  "(default: the current folder)")
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    return p


def _run_config(args) -> config_lib.PipelineConfig:
    overrides = {}
    if args.train_steps:
        overrides["training"] = {"train_steps": args.train_steps}
    # --from re-executes its nodes: a cache hit would hand back what the user asked to redo.
    if getattr(args, "no_cache", False) or getattr(args, "start_from", None):
        overrides["pipeline"] = {"enable_cache": False}
    return _config(args, sample=args.sample, overrides=overrides)


_SPARK_FLAGS = ("spark_master", "spark_ui", "worker_pool", "spark_job_server_jar", "timeout")
_DATAFLOW_FLAGS = ("project", "region", "temp_location", "image", "pipeline_root", "input_uri")


def cmd_run(args) -> int:
    import dataclasses

    for flags, runner in ((_SPARK_FLAGS, "spark"), (_DATAFLOW_FLAGS, "dataflow")):
        used = [f for f in flags if getattr(args, f)]
        if used and args.runner != runner:
            raise config_lib.ConfigError(
                f"--{used[0].replace('_', '-')} needs --runner {runner}")
    partial_flag = "--resume" if args.resume else args.start_from and f"--from {args.start_from}"
    if args.data and partial_flag and partial_flag.lower() != "--from csvexamplegen":
        raise config_lib.ConfigError(f"--data is read by CsvExampleGen, which {partial_flag} "
                                     "takes from an earlier run; drop --data, or use --from "
                                     "CsvExampleGen")
    partial = {"start_from": args.start_from, "resume": args.resume}
    cfg = _run_config(args)
    if args.runner == "spark":
        from runners import spark

        options = spark.SparkOptions(
            master=args.spark_master, ui=args.spark_ui, worker_pool=args.worker_pool,
            job_server_jar=args.spark_job_server_jar,
            **({"timeout": float(args.timeout)} if args.timeout else {}))
        seconds = spark.run(cfg, options, **partial)
    else:
        from runners import local

        where = {}
        if args.runner == "dataflow":
            from runners import dataflow

            cfg = dataclasses.replace(cfg, beam_args=tuple(dataflow.beam_args(
                args.project, args.region, args.temp_location, args.image)))
            where = {"pipeline_root": dataflow.check_gcs_uri("--pipeline-root", args.pipeline_root),
                     "data": dataflow.gcs_input(args.input_uri, cfg.dataset.schema_file)}
        seconds = local.run(cfg, **where, **partial)
    print(f"\nPipeline finished in {seconds:.1f}s\n")
    from runners import report

    print(report.status(cfg))
    from runners import card_cmd

    if line := card_cmd.after_run(cfg):
        print(line)
    from runners import release_cmd

    if line := release_cmd.after_run(cfg):
        print(line)
    return 0


def cmd_card(args) -> int:
    from runners import card_cmd

    cfg = _config(args)
    for path in card_cmd.run(cfg, args.version, args.to):
        print(path)
    return 0


def cmd_compare(args) -> int:
    from pipeline import metadata
    from runners import compare, local

    cfg = _run_config(args)
    if not cfg.dataset.groups or not cfg.distillation.enabled:
        raise config_lib.ConfigError("compare needs dataset.groups and distillation.enabled")
    if args.seeds > 1:
        result = compare.measure_seeds(cfg, args.seeds)
    else:
        seconds = local.run(cfg, with_baseline=True)
        print(f"\nPipeline (with BaselineTrainer) finished in {seconds:.1f}s; comparing ...",
              flush=True)
        result = compare.measure(cfg, metadata.run_summary(cfg))
    paths = compare.write(result, cfg.command_dir("compare"))
    print("\n" + compare.render(result))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def cmd_deploy(args) -> int:
    import pathlib

    from runners import deploy

    paths = deploy.write(_config(args), pathlib.Path(args.to).resolve() if args.to else None)
    for path in paths.values():
        print(path)
    return 0


def cmd_serve(args) -> int:
    from runners import serve_cmd

    return serve_cmd.run(args, lambda: _config(args))


def cmd_predict(args) -> int:
    import json

    from serving import client as client_lib

    try:
        rows = client_lib.read_rows(args.rows)
        c = client_lib.Client(args.host, args.port, args.model, args.protocol, args.version,
                              args.label)
        try:
            for start in range(0, len(rows), args.batch_size):
                batch = rows[start:start + args.batch_size]
                if args.explain:
                    explained = c.explain(batch, args.signature or client_lib.EXPLAIN_SIGNATURE)
                    for i, row in enumerate(explained.rows):
                        top = list(row.pop("attributions").items())[:args.top]
                        print(json.dumps({"row": start + i + 1, "version": explained.version,
                                          **row, "top": [{"feature": k, "attribution": v}
                                                         for k, v in top]}))
                    continue
                result = c.predict(batch, args.signature or "serving_default")
                for i, values in enumerate(zip(*result.outputs.values())):
                    print(json.dumps({"row": start + i + 1, "version": result.version,
                                      **dict(zip(result.outputs, values))}))
        finally:
            c.close()
    except client_lib.ClientError as e:
        raise FairwayError(str(e)) from None
    return 0


def cmd_monitor(args) -> int:
    from runners import monitor_cmd

    alert = monitor_cmd.run(args, _config(args), lambda: _run_config(args))
    return EXIT_ALERT if alert else 0


def cmd_compile(args) -> int:
    import pathlib

    from runners import vertex

    cfg = _config(args)
    to = pathlib.Path(args.to) if args.to else cfg.command_dir("compile")
    path = vertex.compile(cfg, args.image, args.pipeline_root, args.input_uri,
                          to / "pipeline.json")
    print(path)
    return 0


def cmd_report(args) -> int:
    import pathlib

    from monitoring import run_report

    cfg = _config(args)
    page = run_report.write(cfg, pathlib.Path(args.to) if args.to else cfg.command_dir("report"))
    print(page)
    print(page.parent / "index.html")
    return 0


def cmd_stats(args) -> int:
    from runners import stats_cmd

    print(stats_cmd.run(_config(args), args.source, args.compare, args.to, args.window,
                        args.sort))
    return 0


def cmd_status(args) -> int:
    from runners import report

    print(report.status(_config(args), args.json, cache=args.cache))
    return 0


def cmd_doctor(args) -> int:
    from runners import doctor

    return 0 if doctor.run(args, lambda: _config(args)) else EXIT_FAILED


def cmd_data(args) -> int:
    from data import acquire

    cfg = _config(args)
    if args.from_logs:
        from runners import feedback_cmd

        return feedback_cmd.data_from_logs(cfg, args)
    if args.labels:
        raise config_lib.ConfigError("--labels goes with --from-logs (the labels of logged "
                                     "requests)")
    data = acquire.prepare(cfg)
    if args.new_span:
        import pathlib

        from data import spans
        dest = spans.write(data.base, pathlib.Path(args.new_span), args.rows, args.seed,
                           spans.injection(cfg.inject_drift, args.inject_drift,
                                           args.category_fraction))
        print(f"new span{' with injected drift' if args.inject_drift else ''}: {dest} "
              f"(run it with `fairway run --data {dest}`)")
        return 0
    print(data.base)
    return 0


def cmd_release(args) -> int:
    from runners import release_cmd

    return release_cmd.run(_config(args), args)


def cmd_rollout(args) -> int:
    from runners import rollout_cmd

    return rollout_cmd.rollout(_config(args), args)


def cmd_label_queue(args) -> int:
    from runners import feedback_cmd

    return feedback_cmd.label_queue(_config(args), args)


def cmd_schema(args) -> int:
    from runners import schema_cmd

    return schema_cmd.run(_config(args), args)


def cmd_store(args) -> int:
    from runners import store_cmd

    return store_cmd.run(_config(args), args)


def cmd_init(args) -> int:
    import time

    from runners.progress import Progress

    def items(text):
        return [v.strip() for v in text.split(",") if v.strip()] if text else []

    # TFDV imports TensorFlow: its C++ start-up lines and warnings go to a log, as in a run.
    log_file = config_lib.cache_dir("logs") / f"init-{time.strftime('%Y%m%d-%H%M%S')}.log"
    with Progress(log_file) as progress:
        from data import init

        return init.run(args.csv, args.label, positive=args.positive, sensitive=args.sensitive,
                        groups=items(args.groups) if args.groups is not None else None,
                        ignore=items(args.ignore), name=args.name, to=args.to,
                        force=args.force, log=progress.echo)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        commands = {"run": cmd_run, "compile": cmd_compile, "compare": cmd_compare, "deploy": cmd_deploy,
                    "serve": cmd_serve, "predict": cmd_predict,
                    "monitor": cmd_monitor, "report": cmd_report, "stats": cmd_stats, "status": cmd_status, "data": cmd_data,
                    "init": cmd_init, "card": cmd_card, "label-queue": cmd_label_queue,
                    "rollout": cmd_rollout,
                    "doctor": cmd_doctor, "schema": cmd_schema,
                    "gc": cmd_store, "metadata": cmd_store,
                    **dict.fromkeys(("models", "promote", "rollback", "unset", "approve",
                                     "history"), cmd_release)}
        return commands[args.command](args)
    except config_lib.ConfigError as e:
        print(f"fairway: config error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (FairwayError, FileNotFoundError, LookupError) as e:
        print(f"fairway: {e}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("fairway: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
