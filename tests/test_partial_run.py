"""`fairway run --from NODE` and `--resume`: which nodes run and which run lends the others'
artifacts, on a store laid out as TFX 1.16 lays it out (contexts `pipeline`, `pipeline_run`,
`node`; exec properties as custom properties; a partial run's reused node recorded without
parameters, with the same OUTPUT artifacts as the execution that made them). The runs
themselves are tested end to end in tests/test_e2e.py."""
import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb
from tfx.proto.orchestration import pipeline_pb2

from pipeline import config, metadata, partial_run
from runners import cli

NODES = ("CsvExampleGen", "previous_statistics_resolver", "Transform", "TeacherTrainer",
         "Evaluator", "Pusher")


def ir(**params) -> pipeline_pb2.Pipeline:
    """The compiled pipeline: NODES in order, each with parameter `p` (default "1")."""
    p = pipeline_pb2.Pipeline()
    for node in NODES:
        pn = p.nodes.add().pipeline_node
        pn.node_info.id = node
        if not node.endswith("resolver"):
            pn.parameters.parameters["p"].field_value.string_value = params.get(node, "1")
    return p


class Store:
    def __init__(self, cfg):
        cfg.metadata_path.parent.mkdir(parents=True, exist_ok=True)
        self.cfg, self.s = cfg, metadata_store.MetadataStore(metadata.connection_config(cfg))
        self.types = {n: self.s.put_context_type(pb.ContextType(name=n))
                      for n in ("pipeline", "pipeline_run", "node")}
        self.etype = self.s.put_execution_type(pb.ExecutionType(name="tfx.Node"))
        self.atype = self.s.put_artifact_type(pb.ArtifactType(name="Thing"))
        self.contexts, self.outputs = {}, {}
        self.ctx("pipeline", cfg.pipeline_name)

    def ctx(self, kind, name):
        if (kind, name) not in self.contexts:
            [self.contexts[kind, name]] = self.s.put_contexts(
                [pb.Context(type_id=self.types[kind], name=name)])
        return self.contexts[kind, name]

    def run(self, name, states: dict[str, str], reused=(), params=None):
        """A run: node -> state; `reused` nodes are recorded as a snapshot records them."""
        run = self.ctx("pipeline_run", name)
        self.s.put_parent_contexts([pb.ParentContext(
            child_id=run, parent_id=self.ctx("pipeline", self.cfg.pipeline_name))])
        for node, state in states.items():
            e = pb.Execution(type_id=self.etype, last_known_state=getattr(pb.Execution, state))
            if node in reused:
                art = self.s.get_artifacts_by_id([self.outputs[node]])[0]
            else:
                if not node.endswith("resolver"):
                    e.custom_properties["p"].string_value = (params or {}).get(node, "1")
                [aid] = self.s.put_artifacts([pb.Artifact(type_id=self.atype, uri="/x")])
                art = self.s.get_artifacts_by_id([aid])[0]
                self.outputs[node] = aid
            contexts = self.s.get_contexts_by_id(
                [self.contexts["pipeline", self.cfg.pipeline_name], run,
                 self.ctx("node", f"{self.cfg.pipeline_name}.{node}")])
            self.s.put_execution(e, [(art, pb.Event(type=pb.Event.OUTPUT))], contexts)


DONE = dict.fromkeys(NODES, "COMPLETE")


@pytest.fixture
def store(tmp_path):
    return Store(config.preset("census", output_dir=tmp_path))


def test_from_takes_the_latest_run_that_completed_every_node(store):
    store.run("r1", DONE)
    store.run("r2", {**dict.fromkeys(NODES[:3], "COMPLETE"), "TeacherTrainer": "FAILED"})
    part = partial_run.start_from(store.cfg, ir(), "evaluator")  # any case
    assert part.from_nodes == ("Evaluator",) and part.base_run == "r1"
    assert "r1" in part.why
    # A partial run completes every node too (its reused ones as cached): it can be a base.
    store.run("r3", {**dict.fromkeys(NODES[:4], "CACHED"), "Evaluator": "COMPLETE",
                     "Pusher": "COMPLETE"}, reused=NODES[:4])
    assert partial_run.start_from(store.cfg, ir(), "Transform").base_run == "r3"


def test_from_an_unknown_node_or_without_a_completed_run_is_a_clear_error(store):
    store.run("r1", {"CsvExampleGen": "COMPLETE", "Transform": "FAILED"})
    with pytest.raises(partial_run.PartialRunError, match="--from Trainer: no such node; "
                       "expected one of CsvExampleGen, Transform, TeacherTrainer, Evaluator"):
        partial_run.start_from(store.cfg, ir(), "Trainer")
    with pytest.raises(partial_run.PartialRunError, match="no run of 'fairway-census' .* "
                       "completed every node; run `fairway run` first"):
        partial_run.start_from(store.cfg, ir(), "Evaluator")


def test_resume_starts_at_the_failed_node_and_reuses_what_completed(store):
    store.run("r1", DONE)
    store.run("r2", {"CsvExampleGen": "COMPLETE", "previous_statistics_resolver": "COMPLETE",
                     "Transform": "COMPLETE", "TeacherTrainer": "RUNNING"})  # killed
    part = partial_run.resume(store.cfg, ir())
    assert part.base_run == "r2"  # the latest run, not the last complete one
    assert part.from_nodes == ("TeacherTrainer", "Evaluator", "Pusher")
    assert part.why.startswith("Resuming run r2: from TeacherTrainer;")


def test_resume_reruns_a_completed_node_whose_parameters_changed(store):
    store.run("r1", DONE)
    # r2 was itself a partial run: CsvExampleGen and Transform reused from r1 (recorded without
    # parameters); it failed in the teacher.
    store.run("r2", {"CsvExampleGen": "CACHED", "previous_statistics_resolver": "COMPLETE",
                     "Transform": "CACHED", "TeacherTrainer": "FAILED"},
              reused=("CsvExampleGen", "Transform"))
    unchanged = partial_run.resume(store.cfg, ir())
    assert unchanged.from_nodes == ("TeacherTrainer", "Evaluator", "Pusher")
    # Transform's parameters are not what r1 recorded (e.g. edited modules/transform.py).
    edited = partial_run.resume(store.cfg, ir(Transform="2"))
    assert edited.from_nodes == ("TeacherTrainer", "Evaluator", "Pusher", "Transform")
    assert "and Transform (changed since)" in edited.why


def test_resume_after_a_complete_run_says_there_is_nothing_to_resume(store):
    store.run("r1", DONE)
    with pytest.raises(partial_run.PartialRunError,
                       match="the latest run r1 completed every node; nothing to resume"):
        partial_run.resume(store.cfg, ir())


@pytest.mark.parametrize("args, message", [
    (["--from", "Evaluator", "--data", "d"], "--data is read by CsvExampleGen, which --from "
                                             "Evaluator takes from an earlier run"),
    (["--resume", "--data", "d"], "--data is read by CsvExampleGen, which --resume"),
])
def test_data_goes_only_with_a_run_that_reads_it(tmp_path, capsys, args, message):
    assert cli.main(["run", "--output", str(tmp_path), *args]) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err


def test_from_and_resume_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--from", "Evaluator", "--resume"])
    assert "not allowed with argument" in capsys.readouterr().err
