"""The model registry ("parameter server"): versioned model artifacts, aliases, promotion gate, bundles.

Use :class:`Registry`; it knows nothing about HTTP. Errors derive from :class:`RegistryError`.
"""

from gpt2_agent.registry.artifact import check_safetensors, validate_artifact
from gpt2_agent.registry.errors import (
    ChecksumMismatch,
    InvalidArtifact,
    InvalidName,
    NotFound,
    PromotionRefused,
    RegistryError,
)
from gpt2_agent.registry.gate import Metric, parse_metric
from gpt2_agent.registry.records import AliasChange, ModelInfo, PromotionResult, VersionInfo, VersionStatus
from gpt2_agent.registry.refs import CANDIDATE, LATEST, PRODUCTION, Ref, parse_ref
from gpt2_agent.registry.service import Registry

__all__ = [
    "CANDIDATE",
    "LATEST",
    "PRODUCTION",
    "AliasChange",
    "ChecksumMismatch",
    "InvalidArtifact",
    "InvalidName",
    "Metric",
    "ModelInfo",
    "NotFound",
    "PromotionRefused",
    "PromotionResult",
    "Ref",
    "Registry",
    "RegistryError",
    "VersionInfo",
    "VersionStatus",
    "check_safetensors",
    "parse_metric",
    "parse_ref",
    "validate_artifact",
]
