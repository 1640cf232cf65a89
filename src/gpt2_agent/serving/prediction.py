"""What a prediction returns: a plain, JSON-ready value that names the version that computed it."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One text's classification.

    ``probability`` is the probability of ``label`` (the most probable class); ``scores`` maps
    every label to its probability. ``version`` is the registry version whose weights computed
    this prediction: every prediction of one forward pass carries the same version.
    """

    label: str
    probability: float
    scores: dict[str, float]
    version: int
    model: str

    def to_dict(self) -> dict[str, Any]:
        """The prediction as JSON-ready values."""
        return dataclasses.asdict(self)


__all__ = ["Prediction"]
