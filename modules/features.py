"""Feature keys shared by preprocessing_fn, the Keras model and the serving signatures.

The dataset is not hard-wired: the pipeline passes its DatasetSpec to Transform and Trainer as
``custom_config``, and this module turns it back into a typed object.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

# What a missing categorical value becomes before the vocabulary: its own id, not the OOV
# bucket of unseen values (TFT's vocabulary drops empty strings).
MISSING_TOKEN = "__missing__"


def xf(key: str) -> str:
    """Name of the transformed feature for raw column `key`."""
    return f"{key}_xf"


def missing_xf(key: str) -> str:
    """Name of the 0/1 missing-indicator of an optional numeric column."""
    return f"{key}_missing_xf"


def vocab_name(key: str) -> str:
    return f"vocab_{key}"


@dataclasses.dataclass(frozen=True)
class Features:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    label: str
    sensitive: str | None = None
    optional: tuple[str, ...] = ()  # features the schema allows to be missing
    max_vocab: int | None = None  # categorical vocabularies keep the most frequent values

    @property
    def raw(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def label_xf(self) -> str:
        return xf(self.label)

    @property
    def indicators(self) -> tuple[str, ...]:
        """Transformed 0/1 inputs that say a numeric value was missing (and imputed)."""
        return tuple(missing_xf(k) for k in self.numeric if k in self.optional)

    def to_config(self) -> dict[str, Any]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical),
                "label": self.label, "sensitive": self.sensitive,
                "optional": list(self.optional), "max_vocab": self.max_vocab}

    @classmethod
    def from_config(cls, custom_config: Mapping[str, Any]) -> "Features":
        c = custom_config["features"]
        return cls(tuple(c["numeric"]), tuple(c["categorical"]), c["label"], c.get("sensitive"),
                   tuple(c.get("optional", ())), c.get("max_vocab"))
