"""The whole ``ModelDeployment`` object and how to read one from YAML or the API server."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fulcrum.api.spec import ModelDeploymentSpec
from fulcrum.api.status import ModelDeploymentStatus

GROUP = "fulcrum.dev"
VERSION = "v1alpha1"
API_VERSION: Literal["fulcrum.dev/v1alpha1"] = "fulcrum.dev/v1alpha1"
KIND: Literal["ModelDeployment"] = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md"]
CATEGORIES = ["fulcrum", "ml"]

MAX_NAME_LENGTH = 40
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_RULE: dict[str, Any] = {
    "rule": f"self.metadata.name.matches('{NAME_PATTERN}') && size(self.metadata.name) <= {MAX_NAME_LENGTH}",
    "message": (
        f"metadata.name must be a DNS-1035 label of at most {MAX_NAME_LENGTH} characters "
        "(it names the Triton Deployment and Service)"
    ),
}

SERVED_NAME_RULE: dict[str, Any] = {
    "rule": "!has(self.spec) || !has(self.spec.serving) || has(self.spec.serving.modelName) "
    "|| !self.spec.tiers.exists(t, t.name == self.metadata.name)",
    "message": (
        "metadata.name is the default serving.modelName and must differ from every tier name (set serving.modelName)"
    ),
}


class ModelDeployment(BaseModel):
    """A ModelDeployment as stored in the API server."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    api_version: Literal["fulcrum.dev/v1alpha1"] = Field(default=API_VERSION, alias="apiVersion")
    kind: Literal["ModelDeployment"] = KIND
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)

    @model_validator(mode="after")
    def _name(self) -> ModelDeployment:
        name = self.metadata.get("name")
        if name is not None and not (re.match(NAME_PATTERN, name) and len(name) <= MAX_NAME_LENGTH):
            raise ValueError(NAME_RULE["message"])
        if self.spec.serving.model_name is None and any(t.name == name for t in self.spec.tiers):
            raise ValueError(SERVED_NAME_RULE["message"])
        return self

    @property
    def served_name(self) -> str:
        """The model name clients call: spec.serving.modelName, else metadata.name."""
        return self.spec.serving.model_name or self.name

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "default"))

    @property
    def generation(self) -> int:
        return int(self.metadata.get("generation", 0))


def format_validation_error(error: ValidationError) -> str:
    """One line per problem, each naming the camelCase field path, e.g. ``spec.scaling: ...``."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"]) or "spec"
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{path}: {message}")
    return "; ".join(lines)


def parse_model_deployment(obj: Mapping[str, Any]) -> ModelDeployment:
    """Parse a whole object (from YAML or the API server). Raises ``ValidationError``."""
    return ModelDeployment.model_validate(dict(obj))


def parse_spec(spec: Mapping[str, Any]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(dict(spec))
