"""runners.engine_jobs: a Spark run's record (runners.spark) read back onto its run summary."""
import json

from pipeline import config
from runners import engine_jobs, report


def test_applications_attach_to_the_node_whose_beam_job_they_ran(tmp_path):
    cfg = config.preset("census", output_dir=tmp_path)
    summary = {"run_id": "run-1", "pipeline": cfg.pipeline_name, "metrics": {},
               "blessed": None, "pushed": None,
               "nodes": [{"node": n, "state": "COMPLETE", "seconds": 1.0, "artifacts": {}}
                         for n in ("CsvExampleGen", "TeacherTrainer")]}
    assert engine_jobs.attach(cfg, summary) is summary and "engine" not in summary  # no record
    app = {"id": "app-1", "name": cfg.beam_job_name("CsvExampleGen") + "_0a1b", "state":
           "FINISHED", "starttime": 1, "duration": 2500, "cores": 2}
    cfg.beam_jobs_dir.mkdir(parents=True)
    (cfg.beam_jobs_dir / "run-1.json").write_text(json.dumps(
        {"engine": "spark", "master": "spark://127.0.0.1:7077", "applications": [app]}))
    engine_jobs.attach(cfg, summary)
    assert summary["engine"] == {"name": "spark", "master": "spark://127.0.0.1:7077"}
    assert summary["nodes"][0]["spark_applications"] == [app]
    assert "spark_applications" not in summary["nodes"][1]
    text = report.text(summary)
    assert "Beam components ran on spark at spark://127.0.0.1:7077" in text
    assert "Spark application: app-1 (FINISHED, 2.5s)" in text


def test_status_prints_counts_as_integers():
    summary = {"run_id": "run-1", "pipeline": "p", "nodes": [], "blessed": True,
               "pushed": False, "metrics": {"Overall": {"example_count": 16281.0,
                                                        "auc": 0.91234}}}
    text = report.text(summary)
    assert "16,281" in text and "16281.0000" not in text and "0.9123" in text
