"""Fairway's own small TFX components: the declarations (inputs, outputs, parameters).

Each is a Python-function component whose body calls its executor module, where the logic
lives and is tested (tests/test_components.py): `pipeline.data_gate` and
`pipeline.serving_check` (`EXECUTES`: with this module, the code in their cache keys, see
pipeline.code_hash). TFX generates the executor classes `DataGate_Executor` and
`ServingCheck_Executor` in this module; compiled pipelines (Vertex) name them, and MLMD records
the node ids `DataGate` and `ServingCheck`, so keep these names, keys and parameters.

No `from __future__ import annotations` here: TFX reads the type hints at decoration time.
"""

import json

from tfx import v1 as tfx
from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from pipeline import data_gate, serving_check
# Re-exported: the runners and the report catch and read these.
from pipeline.data_gate import DataAnomaliesError, describe_anomalies  # noqa: F401
from pipeline.serving_check import ServingCheckError  # noqa: F401

# The custom properties the Evaluator sets on its ModelBlessing.
_BLESSED = evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY
_CURRENT_MODEL_ID = evaluator_constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY

# The module each component's body delegates to.
EXECUTES = {"DataGate": data_gate.__name__, "ServingCheck": serving_check.__name__}


class LatestOrNone(tfx.dsl.experimental.ResolverStrategy):
    """The newest artifact of each channel, or none on a first run (TFX's LatestArtifactStrategy
    fails its resolver node when there is nothing yet)."""

    def resolve_artifacts(self, store, input_dict):
        return {k: sorted(v, key=lambda a: a.id)[-1:] for k, v in input_dict.items()}


class LatestBlessedOtherThanCandidate(tfx.dsl.experimental.ResolverStrategy):
    """The Evaluator's baseline: the newest blessed `model` (and its newest blessing) that is not
    the `candidate` this run evaluates, or none. TFX's LatestBlessedModelStrategy resolves the
    candidate itself once it is blessed: a re-run with cached Trainers then gives the Evaluator
    new inputs (baseline: none -> itself), so it re-evaluates, blesses, and the Pusher pushes
    the same model again as a new version. Excluding the candidate keeps an unchanged re-run's
    Evaluator, ServingCheck and Pusher cached; a retrained candidate still gets the previous
    blessed model. Keys: `model` and `model_blessing` (every Model and ModelBlessing in the
    pipeline) and `candidate` (the evaluated Trainer's output of this run, returned as is)."""

    def resolve_artifacts(self, store, input_dict):
        exclude = {a.id for a in input_dict["candidate"]}
        blessings = {}  # model id -> its newest blessing that blessed it
        for b in sorted(input_dict["model_blessing"], key=lambda a: a.id):
            if b.get_int_custom_property(_BLESSED) == 1:
                blessings[b.get_int_custom_property(_CURRENT_MODEL_ID)] = b
        blessed = sorted((m for m in input_dict["model"]
                          if m.id in blessings and m.id not in exclude), key=lambda a: a.id)
        model = blessed[-1:]
        return {"model": model, "model_blessing": [blessings[m.id] for m in model],
                "candidate": list(input_dict["candidate"])}


@component
def DataGate(anomalies: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleAnomalies],
             statistics: tfx.dsl.components.InputArtifact[standard_artifacts.ExampleStatistics],
             schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema],
             accepted: tfx.dsl.components.OutputArtifact[standard_artifacts.ExampleStatistics],
             previous_statistics: tfx.dsl.components.InputArtifact[
                 standard_artifacts.ExampleStatistics] = None,  # None: first run
             sensitive: tfx.dsl.components.Parameter[str] = "",
             groups: tfx.dsl.components.Parameter[str] = "[]",
             code_hash: tfx.dsl.components.Parameter[str] = ""):
    """Fail the run, naming every problem, if ExampleValidator found anomalies, the training data
    drifted beyond the schema's drift_comparators from the last data that passed this gate
    (`previous_statistics`), or a group of the sensitive feature (JSON list `groups`) is absent
    from a split. Data that passes is published as `accepted`, the next run's reference.
    `code_hash`: unused here; the digests of the code this runs (pipeline.code_hash), so TFX's
    cache key changes with it."""
    data_gate.run(anomalies, statistics, schema, accepted, previous_statistics,
                  sensitive=sensitive, groups=json.loads(groups))


@component
def ServingCheck(model: tfx.dsl.components.InputArtifact[standard_artifacts.Model],
                 examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
                 blessing: tfx.dsl.components.OutputArtifact[standard_artifacts.InfraBlessing],
                 model_name: tfx.dsl.components.Parameter[str],
                 schema: tfx.dsl.components.InputArtifact[standard_artifacts.Schema] = None,
                 split: tfx.dsl.components.Parameter[str] = "eval",
                 num_examples: tfx.dsl.components.Parameter[int] = 8,
                 code_hash: tfx.dsl.components.Parameter[str] = ""):
    """The step before the Pusher: writes TF Serving warmup requests from real `split` rows
    and the `schema` restricted to SERVING (assets.extra/schema.pbtxt, for `fairway serve
    --validate`) into a copy of the candidate, loads the copy in Fairway's serving runtime and
    replays them; the Pusher pushes this copy. `code_hash`: as DataGate's."""
    serving_check.run(model, examples, blessing, model_name, split, num_examples, schema)
