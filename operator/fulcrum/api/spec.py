"""``ModelDeployment.spec``: the one source of truth for the schema (the CRD is generated from it).

Every cross-field rule is written twice, side by side: as a CEL ``x-kubernetes-validations`` rule that
the API server enforces at ``kubectl apply``, and as a pydantic validator with the same message, so a
spec the API server accepts parses here and a spec that fails here was refused by the API server
(``tests/unit/test_api_manifests.py`` and ``tests/e2e/test_api_admission.py`` hold both to one table).
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator

from fulcrum.api.base import (
    DNS_LABEL_PATTERN,
    NON_NEGATIVE_DECIMAL_PATTERN,
    Money,
    Quantity,
    SpecModel,
    Threshold,
)

TritonDataType = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BF16",
    "BYTES",
]
SourceFormat = Literal["onnx", "torchscript", "torch-export"]
Precision = Literal["fp32", "fp16", "int8"]
Backend = Literal["onnxruntime", "tensorrt"]
MetricName = Literal["MaxAbsError", "MeanAbsError", "Cosine", "TopKOverlap", "Agreement"]
Objective = Literal["Quality", "Cost"]

Rule = dict[str, Any]
"""A CEL rule: {"rule": ..., "message": ...}."""

URI_PATTERN = r"^(s3://|gs://|https://|pvc://|file:)\S+$"
SHA256_PATTERN = r"^[a-f0-9]{64}$"
CLAIM_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


def _unique(names: list[str]) -> bool:
    return len(names) == len(set(names))


def _named_list(what: str) -> dict[str, Any]:
    """A list of named items: a map keyed by name (so GitOps tools merge items instead of fighting over the
    whole list), with a CEL rule that says in words what a duplicate is."""
    return {
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "x-kubernetes-validations": [_unique_names_rule(what)],
    }


def _unique_names_rule(what: str) -> Rule:
    return {
        "rule": "self.all(x, self.exists_one(y, y.name == x.name))",
        "message": f"{what} names must be unique",
    }


# --- percentile: an integer or a decimal string, 50..99.9 -------------------------------------------------

PERCENTILE_MIN = Decimal(50)
PERCENTILE_MAX = Decimal("99.9")
PERCENTILE_RULE = (
    "type(self) == int ? (self >= 50 && self <= 99) : "
    "(self.matches('" + NON_NEGATIVE_DECIMAL_PATTERN.replace("\\", "\\\\") + "') "
    "&& double(self) >= 50.0 && double(self) <= 99.9)"
)
PERCENTILE_MESSAGE = 'slo.percentile must be between 50 and 99.9 (an integer, or a decimal string like "99.9")'


def _percentile(value: object) -> Decimal:
    if isinstance(value, Decimal):
        parsed = value
    elif isinstance(value, int) and not isinstance(value, bool):
        parsed = Decimal(value)
    elif isinstance(value, str):
        if not re.match(NON_NEGATIVE_DECIMAL_PATTERN, value):
            raise ValueError(PERCENTILE_MESSAGE)
        parsed = Decimal(value)
    else:
        raise ValueError(PERCENTILE_MESSAGE)
    if not PERCENTILE_MIN <= parsed <= PERCENTILE_MAX:
        raise ValueError(PERCENTILE_MESSAGE)
    return parsed


def _percentile_to_wire(value: Decimal) -> int | str:
    return int(value) if value == value.to_integral_value() else format(value, "f")


Percentile = Annotated[
    Decimal,
    PlainValidator(_percentile),
    PlainSerializer(_percentile_to_wire),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "x-kubernetes-validations": [{"rule": PERCENTILE_RULE, "message": PERCENTILE_MESSAGE}],
        }
    ),
]


# --- model ------------------------------------------------------------------------------------------------


class ModelSource(SpecModel):
    """Where the model file is and what format it is in."""

    uri: str = Field(
        pattern=URI_PATTERN,
        max_length=2048,
        description=(
            "Location of the model file: s3://bucket/key, gs://bucket/key, https://host/path, "
            "pvc://<claim>/<path> or file:///absolute/path (a relative file: URI is relative to the spec file "
            "when building locally)."
        ),
    )
    format: SourceFormat = Field(
        description=(
            "onnx, torchscript (torch.jit.save) or torch-export (.pt2, torch.export.save). "
            "Pickled nn.Module files are refused: they can run arbitrary code."
        )
    )
    sha256: str | None = Field(
        default=None,
        pattern=SHA256_PATTERN,
        description="Expected SHA-256 of the model file (64 lowercase hex digits); the build fails on mismatch.",
    )


_MAX_DIMS_RULE: Rule = {
    "rule": "!has(self.maxDims) || size(self.maxDims) == size(self.dims)",
    "message": "model.inputs[].maxDims must have one entry per entry of dims",
}


class TensorSpec(SpecModel):
    """One input or output tensor of the model, without the batch dimension."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_MAX_DIMS_RULE]})

    name: str = Field(min_length=1, max_length=128, description="Tensor name as in the model graph.")
    data_type: TritonDataType = Field(description="Triton data type name: FP32, FP16, INT64, INT32, BOOL, BYTES...")
    dims: list[Annotated[int, Field(ge=-1)]] = Field(
        max_length=8,
        description="Shape without the batch dimension; -1 marks a variable-size dimension.",
    )
    max_dims: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None,
        max_length=8,
        description=(
            "Inputs only, optional: the largest size of each -1 dimension, one entry per dims entry (entries "
            "of fixed dimensions are ignored). TensorRT engines are built for sizes up to these; absent, a -1 "
            "dimension's largest size is the validation data's."
        ),
    )

    @model_validator(mode="after")
    def _max_dims_match(self) -> TensorSpec:
        if self.max_dims is None:
            return self
        if len(self.max_dims) != len(self.dims):
            raise ValueError(_MAX_DIMS_RULE["message"])
        return self


_TORCH_NEEDS_IO_RULE: Rule = {
    "rule": "self.source.format == 'onnx' || (has(self.inputs) && size(self.inputs) > 0 "
    "&& has(self.outputs) && size(self.outputs) > 0)",
    "message": "model.inputs and model.outputs are required for torchscript and torch-export models",
}


class ModelSpec(SpecModel):
    """The model to serve."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_TORCH_NEEDS_IO_RULE]})

    source: ModelSource = Field(description="Where the model file is and its format.")
    inputs: list[TensorSpec] | None = Field(
        default=None,
        max_length=64,
        description="Model inputs. Required for torch formats; read from the graph for onnx.",
        json_schema_extra=_named_list("model.inputs"),
    )
    outputs: list[TensorSpec] | None = Field(
        default=None,
        max_length=64,
        description="Model outputs. Required for torch formats; read from the graph for onnx.",
        json_schema_extra=_named_list("model.outputs"),
    )
    max_batch_size: int = Field(
        default=64, ge=1, le=65536, description="Largest batch Triton may form (dynamic batching)."
    )

    @model_validator(mode="after")
    def _io_rules(self) -> ModelSpec:
        if self.source.format != "onnx" and not (self.inputs and self.outputs):
            raise ValueError(_TORCH_NEEDS_IO_RULE["message"])
        for what, tensors in (("model.inputs", self.inputs), ("model.outputs", self.outputs)):
            if tensors is not None and not _unique([t.name for t in tensors]):
                raise ValueError(f"{what} names must be unique")
        return self


# --- tiers ------------------------------------------------------------------------------------------------


class Calibration(SpecModel):
    """int8 calibration settings (static quantisation with accuracy.validationData)."""

    samples: int = Field(default=512, ge=1, le=100000, description="How many validation samples calibrate int8.")


_CALIBRATION_RULE: Rule = {
    "rule": "!has(self.calibration) || self.precision == 'int8'",
    "message": "tiers[].calibration is only valid for precision int8",
}
_TENSORRT_RULE: Rule = {
    "rule": "!has(self.tensorrt) || self.backend == 'tensorrt'",
    "message": "tiers[].tensorrt is only valid for backend tensorrt",
}


class TensorRTOptions(SpecModel):
    """TensorRT engine build settings (backend tensorrt only)."""

    workspace_mib: int = Field(
        default=1024,
        alias="workspaceMiB",
        ge=16,
        le=262144,
        description="Most GPU memory (MiB) TensorRT may use as scratch space while it picks kernels.",
    )


class Tier(SpecModel):
    """One precision tier: a way to run the model, traded between accuracy and speed."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_CALIBRATION_RULE, _TENSORRT_RULE]})

    name: str = Field(
        pattern=DNS_LABEL_PATTERN, max_length=40, description="Tier name (DNS label), unique in the spec."
    )
    precision: Precision = Field(description="Numeric precision: fp32, fp16 or int8.")
    backend: Backend = Field(
        default="onnxruntime",
        description="onnxruntime (CPU or GPU) or tensorrt (needs a GPU node pool).",
    )
    calibration: Calibration | None = Field(default=None, description="int8 only: calibration settings.")
    tensorrt: TensorRTOptions | None = Field(default=None, description="tensorrt only: engine build settings.")

    @model_validator(mode="after")
    def _calibration_only_int8(self) -> Tier:
        if self.calibration is not None and self.precision != "int8":
            raise ValueError(_CALIBRATION_RULE["message"])
        if self.tensorrt is not None and self.backend != "tensorrt":
            raise ValueError(_TENSORRT_RULE["message"])
        return self


# --- accuracy ---------------------------------------------------------------------------------------------

_LOWER_IS_BETTER = ("MaxAbsError", "MeanAbsError")
_CHECK_RULES: list[Rule] = [
    {
        "rule": "self.metric in ['MaxAbsError', 'MeanAbsError'] ? (has(self.max) && !has(self.min)) "
        ": (has(self.min) && !has(self.max))",
        "message": (
            "accuracy.checks[]: MaxAbsError and MeanAbsError take max; Cosine, TopKOverlap and Agreement take min"
        ),
    },
    {"rule": "self.metric == 'TopKOverlap' || !has(self.k)", "message": "accuracy.checks[].k is only for TopKOverlap"},
    {
        "rule": "self.metric == 'Agreement' || !has(self.threshold)",
        "message": "accuracy.checks[].threshold is only for Agreement",
    },
]


class AccuracyCheck(SpecModel):
    """One accuracy check of a tier's outputs against the fp32 reference."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [*_CHECK_RULES]})

    metric: MetricName = Field(
        description=(
            "MaxAbsError / MeanAbsError (absolute error, lower is better), Cosine (cosine similarity of the "
            "flattened outputs), TopKOverlap (share of the reference's top-k items the tier also ranks top-k), "
            "Agreement (share of outputs on the same side of threshold)."
        )
    )
    max: Threshold | None = Field(default=None, description="Upper bound (decimal string) for error metrics.")
    min: Threshold | None = Field(default=None, description="Lower bound (decimal string) for similarity metrics.")
    k: int | None = Field(default=None, ge=1, le=100000, description="TopKOverlap: how many top items to compare.")
    threshold: Threshold | None = Field(
        default=None, description='Agreement: the decision threshold (decimal string, default "0.5").'
    )

    @model_validator(mode="after")
    def _bounds(self) -> AccuracyCheck:
        lower_is_better = self.metric in _LOWER_IS_BETTER
        if lower_is_better != (self.max is not None) or lower_is_better == (self.min is not None):
            raise ValueError(_CHECK_RULES[0]["message"])
        if self.k is not None and self.metric != "TopKOverlap":
            raise ValueError(_CHECK_RULES[1]["message"])
        if self.threshold is not None and self.metric != "Agreement":
            raise ValueError(_CHECK_RULES[2]["message"])
        return self

    @property
    def effective_k(self) -> int:
        return self.k if self.k is not None else 100

    @property
    def effective_threshold(self) -> Decimal:
        return self.threshold if self.threshold is not None else Decimal("0.5")


def _default_checks() -> list[AccuracyCheck]:
    return [AccuracyCheck(metric="MeanAbsError", max=Decimal("0.01"))]


class ValidationData(SpecModel):
    """Validation inputs: an .npz file with one array per model input, named after the input."""

    uri: str = Field(
        pattern=URI_PATTERN,
        max_length=2048,
        description="Location of the .npz file (same schemes as model.source.uri).",
    )
    sha256: str | None = Field(
        default=None,
        pattern=SHA256_PATTERN,
        description=(
            "Expected SHA-256 of the file; the build fails on mismatch. With model.source.sha256 it lets "
            "ModelDeployments in other namespaces reuse the build without fetching the files again."
        ),
    )


class AccuracySpec(SpecModel):
    """How each tier is checked against the fp32 reference; a tier that fails any check is not used."""

    checks: list[AccuracyCheck] = Field(
        default_factory=_default_checks,
        min_length=1,
        max_length=16,
        description='Checks every tier must pass. Default: [{metric: MeanAbsError, max: "0.01"}].',
        json_schema_extra={"default": [{"metric": "MeanAbsError", "max": "0.01"}]},
    )
    validation_data: ValidationData | None = Field(
        default=None,
        description="Optional validation (and int8 calibration) inputs; generated from a seeded rule when absent.",
    )


# --- SLO, budget, pools, scaling --------------------------------------------------------------------------


class SLO(SpecModel):
    """The latency objective."""

    latency_ms: int = Field(ge=1, le=600000, description="Latency target in milliseconds (end-to-end at the server).")
    percentile: Percentile = Field(
        default=Decimal(99),
        description='Percentile the target applies to: 50..99.9, an integer or a decimal string like "99.9".',
        json_schema_extra={"default": 99},
    )


class Budget(SpecModel):
    """The cost ceiling."""

    max_cost_per_hour: Money | None = Field(
        default=None,
        description='Cost ceiling per hour (decimal string, e.g. "12.50"), switches included; absent = no ceiling.',
    )


class Toleration(SpecModel):
    """A Kubernetes toleration (core/v1 Toleration)."""

    key: str | None = Field(default=None, max_length=316, description="Taint key the toleration applies to.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Exists or Equal (default Equal).")
    value: str | None = Field(default=None, max_length=63, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(default=None, description="NoExecute only: how long the pod stays bound.")


MEMORY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
_MEMORY_UNITS = {
    "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def memory_bytes(quantity: str | int) -> int:
    """A Kubernetes memory quantity (``24Gi``, ``1.5G``, ``512Mi``, ``1000000``) in bytes, rounded up."""
    text = str(quantity)
    match = re.match(MEMORY_PATTERN, text)
    if match is None:
        raise ValueError(f"{text!r} is not a memory quantity such as 24Gi or 16000Mi")
    unit = match.group(2) or ""
    number = Decimal(text[: len(text) - len(unit)])
    return int((number * _MEMORY_UNITS[unit]).to_integral_value(rounding=ROUND_CEILING))


class NodePool(SpecModel):
    """A pool of nodes Triton can run on, and what a replica there costs."""

    name: str = Field(
        pattern=DNS_LABEL_PATTERN, max_length=40, description="Pool name (DNS label), unique in the spec."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Node labels a pod of this pool requires."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Tolerations for the pool's taints."
    )
    gpus_per_replica: int = Field(default=1, ge=0, le=16, description="nvidia.com/gpu per replica; 0 for a CPU pool.")
    cost_per_hour: Money = Field(description='Cost of one replica per hour (decimal string, e.g. "0.85").')
    replica_startup_seconds: int = Field(
        default=120,
        ge=0,
        le=86400,
        description="Seconds from creating a replica until it serves (model load included).",
    )
    memory_per_replica: str | None = Field(
        default=None,
        pattern=MEMORY_PATTERN,
        max_length=32,
        description=(
            "Memory one replica has for the models it loads (e.g. 24Gi): GPU memory on a GPU pool, RAM on a CPU "
            "pool. Bounds the tiers each replica loads together (serving.hotTiers). Absent: on a CPU pool "
            "serving.resources.limits.memory, else unbounded."
        ),
    )

    @property
    def memory_bytes(self) -> int | None:
        """memoryPerReplica in bytes, or None when not set."""
        return None if self.memory_per_replica is None else memory_bytes(self.memory_per_replica)


_REPLICAS_RULE: Rule = {
    "rule": "self.minReplicas <= self.maxReplicas",
    "message": "scaling.minReplicas must be less than or equal to scaling.maxReplicas",
}


class Scaling(SpecModel):
    """Autoscaling bounds and pacing."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [_REPLICAS_RULE]})

    min_replicas: int = Field(default=1, ge=0, le=1000, description="Fewest replicas (0 allows scale to zero).")
    max_replicas: int = Field(default=10, ge=0, le=1000, description="Most replicas.")
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=86400, description="Load must stay low this long before replicas are removed."
    )
    tier_switch_cooldown_seconds: int = Field(
        default=600, ge=0, le=86400, description="Least time between two tier or pool switches."
    )
    objective: Objective = Field(
        default="Quality",
        description=(
            "Quality: the most accurate tier that meets the SLO within the budget. "
            "Cost: the cheapest tier and pool that meet the SLO."
        ),
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> Scaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(_REPLICAS_RULE["message"])
        return self


class DynamicBatching(SpecModel):
    """Triton dynamic batching settings."""

    max_queue_delay_microseconds: int = Field(
        default=500, ge=0, le=10_000_000, description="How long Triton may hold a request to form a batch."
    )
    preferred_batch_sizes: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, max_length=16, description="Batch sizes Triton prefers to form (optional)."
    )
    queue_timeout_microseconds: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description=(
            "Optional: Triton rejects a request that waited longer than this in its queue "
            "(default_queue_policy, timeout_action REJECT), so under overload only the excess fails and the "
            "requests served stay in time. Set it to about latencyMs minus the model's unloaded p99 latency. "
            "Absent: no timeout (overload delays every request)."
        ),
    )


class ConfigSearch(SpecModel):
    """The build's search of Triton's serving knobs for the most capacity within the SLO."""

    enabled: bool = Field(
        default=True,
        description=(
            "Search instances per replica, max queue delay and preferred batch sizes per tier and pool, and serve "
            "each tier with the config that served the most requests per second within the SLO (the SLO is then "
            "a build input). false: serve dynamicBatching and instancesPerReplica as given."
        ),
    )
    max_candidates: int = Field(
        default=6, ge=1, le=16, description="Most configs measured per tier and pool (the spec's own included)."
    )


class ResourceRequirements(SpecModel):
    """Container resources for each Triton replica (nvidia.com/gpu is set from the pool)."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict, description="Resource requests, e.g. cpu: 2, memory: 8Gi."
    )
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Resource limits.")


# --- serving: the served model name, hot tiers -------------------------------------------------------------

MODEL_NAME_MAX = 63
MODEL_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}$"
MODEL_NAME_RULE: Rule = {
    "rule": "!has(self.modelName) || self.modelName.matches('" + MODEL_NAME_PATTERN + "')",
    "message": (
        "serving.modelName must be a Triton model name: letters, digits, '_' and '-', starting with a letter, "
        f"digit or '_', at most {MODEL_NAME_MAX} characters"
    ),
}


class Serving(SpecModel):
    """How Triton serves the model."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [MODEL_NAME_RULE]})

    model_name: str | None = Field(
        default=None,
        max_length=MODEL_NAME_MAX,
        description=(
            "The model name clients call (KServe v2 /v2/models/<name>/infer) on every replica, in every tier, "
            "through every switch. Default: metadata.name. Must differ from every tier name."
        ),
    )
    hot_tiers: list[Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=40)]] | None = Field(
        default=None,
        max_length=8,
        description=(
            "Tiers each replica loads together, so a switch among them is a routing change in the running "
            "replicas instead of new pods. Absent: every Ready tier that fits the pool's memoryPerReplica "
            "(in spec order); [] turns hot switching off. Either way a tier that does not fit is served cold."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    image: str | None = Field(
        default=None, max_length=512, description="tritonserver image; the operator's default when absent."
    )
    dynamic_batching: DynamicBatching = Field(
        default_factory=DynamicBatching,
        description="Dynamic batching settings.",
        json_schema_extra={"default": DynamicBatching().to_wire()},
    )
    instances_per_replica: int = Field(
        default=1, ge=1, le=16, description="Model instances per Triton replica (instance_group count)."
    )
    config_search: ConfigSearch = Field(
        default_factory=ConfigSearch,
        description="Search Triton's knobs per tier and pool at build time (the values above are the start).",
        json_schema_extra={"default": ConfigSearch().to_wire()},
    )
    resources: ResourceRequirements | None = Field(default=None, description="Container resources per replica.")

    @model_validator(mode="after")
    def _names(self) -> Serving:
        if self.model_name is not None and not re.match(MODEL_NAME_PATTERN, self.model_name):
            raise ValueError(MODEL_NAME_RULE["message"])
        if self.hot_tiers is not None and not _unique(self.hot_tiers):
            raise ValueError("serving.hotTiers must not name a tier twice")
        return self


class PVCRef(SpecModel):
    """A PersistentVolumeClaim holding model repositories."""

    claim_name: str = Field(
        pattern=CLAIM_NAME_PATTERN, max_length=253, description="Name of the claim in the object's namespace."
    )


class SecretRef(SpecModel):
    """A Secret in the object's namespace."""

    name: str = Field(pattern=CLAIM_NAME_PATTERN, max_length=253, description="Secret name.")


_REPOSITORY_RULES: list[Rule] = [
    {"rule": "has(self.pvc) != has(self.uri)", "message": "repository needs exactly one of pvc or uri"},
    {"rule": "!has(self.secretRef) || has(self.uri)", "message": "repository.secretRef is only valid with uri"},
]


class Repository(SpecModel):
    """Where built model repositories are stored."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [*_REPOSITORY_RULES]})

    pvc: PVCRef | None = Field(default=None, description="A PersistentVolumeClaim holding the repository.")
    uri: str | None = Field(
        default=None, pattern=r"^(s3|gs)://\S+$", max_length=2048, description="Object storage prefix, s3:// or gs://."
    )
    secret_ref: SecretRef | None = Field(default=None, description="Credentials for uri (a Secret in the namespace).")

    @model_validator(mode="after")
    def _one_of(self) -> Repository:
        if (self.pvc is None) == (self.uri is None):
            raise ValueError(_REPOSITORY_RULES[0]["message"])
        if self.secret_ref is not None and self.uri is None:
            raise ValueError(_REPOSITORY_RULES[1]["message"])
        return self


# --- the spec ---------------------------------------------------------------------------------------------

_SPEC_RULES: list[Rule] = [
    {
        "rule": "!self.tiers.exists(t, t.backend == 'tensorrt') || self.nodePools.exists(p, p.gpusPerReplica > 0)",
        "message": "a tensorrt tier needs at least one node pool with gpusPerReplica > 0",
    },
    {
        "rule": "!has(self.serving.modelName) || !self.tiers.exists(t, t.name == self.serving.modelName)",
        "message": "serving.modelName must differ from every tier name (each tier is loaded under its own name)",
    },
    {
        "rule": "!has(self.serving.hotTiers) || self.serving.hotTiers.all(h, self.tiers.exists(t, t.name == h))",
        "message": "serving.hotTiers must name tiers of spec.tiers",
    },
]


class ModelDeploymentSpec(SpecModel):
    """What to serve, how well, how fast and at what cost. Fulcrum never writes spec."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [*_SPEC_RULES]})

    model: ModelSpec = Field(description="The model to serve.")
    tiers: list[Tier] = Field(
        min_length=1,
        max_length=8,
        description="Precision tiers, most accurate first; names unique.",
        json_schema_extra=_named_list("tiers"),
    )
    accuracy: AccuracySpec = Field(
        default_factory=AccuracySpec,
        description="Accuracy checks against fp32; a failing tier is not used.",
        json_schema_extra={"default": AccuracySpec().to_wire()},
    )
    slo: SLO = Field(description="The latency objective.")
    budget: Budget = Field(
        default_factory=Budget, description="The cost ceiling (absent = none).", json_schema_extra={"default": {}}
    )
    node_pools: list[NodePool] = Field(
        min_length=1,
        max_length=16,
        description="Node pools Triton may run on; names unique.",
        json_schema_extra=_named_list("nodePools"),
    )
    scaling: Scaling = Field(
        default_factory=Scaling,
        description="Autoscaling bounds and pacing.",
        json_schema_extra={"default": Scaling().to_wire()},  # full: CEL rules see defaults
    )
    serving: Serving = Field(
        default_factory=Serving,
        description="How Triton serves the model.",
        json_schema_extra={"default": Serving().to_wire()},
    )
    repository: Repository | None = Field(
        default=None, description="Where built repositories are stored; the operator's default when absent."
    )

    @model_validator(mode="after")
    def _cross_field(self) -> ModelDeploymentSpec:
        if not _unique([t.name for t in self.tiers]):
            raise ValueError("tiers names must be unique")
        if not _unique([p.name for p in self.node_pools]):
            raise ValueError("nodePools names must be unique")
        if any(t.backend == "tensorrt" for t in self.tiers) and not any(
            p.gpus_per_replica > 0 for p in self.node_pools
        ):
            raise ValueError(_SPEC_RULES[0]["message"])
        names = {t.name for t in self.tiers}
        if self.serving.model_name is not None and self.serving.model_name in names:
            raise ValueError(_SPEC_RULES[1]["message"])
        if self.serving.hot_tiers is not None and not set(self.serving.hot_tiers) <= names:
            raise ValueError(_SPEC_RULES[2]["message"])
        return self

    def tier(self, name: str) -> Tier:
        for tier in self.tiers:
            if tier.name == name:
                return tier
        raise KeyError(f"no tier named {name!r}")

    def node_pool(self, name: str) -> NodePool:
        for pool in self.node_pools:
            if pool.name == name:
                return pool
        raise KeyError(f"no node pool named {name!r}")

    def pool_memory_bytes(self, pool: NodePool) -> int | None:
        """Memory a replica of ``pool`` has for its models: memoryPerReplica, else a CPU pool's memory limit."""
        if pool.memory_per_replica is not None:
            return pool.memory_bytes
        limit = self.serving.resources.limits.get("memory") if self.serving.resources else None
        if pool.gpus_per_replica == 0 and limit is not None:
            try:
                return memory_bytes(limit)
            except ValueError:
                return None  # a limit in a form this does not read: unbounded, never a guess
        return None


def cel_rules() -> list[Rule]:
    """Every CEL rule of the spec, for documentation and tests."""
    return [
        _TORCH_NEEDS_IO_RULE,
        _CALIBRATION_RULE,
        _TENSORRT_RULE,
        _MAX_DIMS_RULE,
        *_CHECK_RULES,
        _REPLICAS_RULE,
        *_REPOSITORY_RULES,
        *_SPEC_RULES,
        MODEL_NAME_RULE,
        {"rule": PERCENTILE_RULE, "message": PERCENTILE_MESSAGE},
    ]
