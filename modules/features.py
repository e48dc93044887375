"""Feature keys shared by preprocessing_fn, the Keras model and the serving signatures.

The dataset is not hard-wired: the pipeline passes its DatasetSpec to Transform and Trainer as
``custom_config``, and this module turns it back into a typed object.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping


def xf(key: str) -> str:
    """Name of the transformed feature for raw column `key`."""
    return f"{key}_xf"


def vocab_name(key: str) -> str:
    return f"vocab_{key}"


@dataclasses.dataclass(frozen=True)
class Features:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    label: str
    sensitive: str | None = None

    @property
    def raw(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def label_xf(self) -> str:
        return xf(self.label)

    def to_config(self) -> dict[str, Any]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical),
                "label": self.label, "sensitive": self.sensitive}

    @classmethod
    def from_config(cls, custom_config: Mapping[str, Any]) -> "Features":
        c = custom_config["features"]
        return cls(tuple(c["numeric"]), tuple(c["categorical"]), c["label"], c.get("sensitive"))
