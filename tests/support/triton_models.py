"""Small models of three architectures, their ModelDeployment specs and torch references, for builder tests.

- ``ctr``: the committed examples/ctr-ranker DeepFM (torch-export .pt2, INT64 + FP32 inputs, validation data);
- ``transformer``: a 2-block pre-norm transformer encoder classifier over token ids (TorchScript, traced);
- ``cnn``: a small conv net exported to ONNX here (format onnx, IO read from the graph).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from model_repo_builder.dtypes import Array

ROOT = Path(__file__).resolve().parents[2]
CTR_SPEC = ROOT / "examples" / "ctr-ranker" / "modeldeployment.yaml"

Reference = Callable[[dict[str, Array]], dict[str, Array]]

GPU_POOLS = [
    {"name": "local", "gpusPerReplica": 0, "costPerHour": "0.05"},
    {"name": "l4", "gpusPerReplica": 1, "costPerHour": "0.85"},
]


@dataclass
class ModelCase:
    name: str
    spec_path: Path
    reference: Reference
    inputs: dict[str, Array]


def _spec(
    name: str, model: dict[str, Any], checks: list[dict[str, Any]], validation: str | None = None
) -> dict[str, Any]:
    accuracy: dict[str, Any] = {"checks": checks}
    if validation:
        accuracy["validationData"] = {"uri": validation}
    return {
        "apiVersion": "fulcrum.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "tiers": [
                {"name": "fp32", "precision": "fp32"},
                {"name": "fp16", "precision": "fp16"},
                {"name": "int8", "precision": "int8"},
                {"name": "fp16-trt", "precision": "fp16", "backend": "tensorrt"},
            ],
            "accuracy": accuracy,
            "slo": {"latencyMs": 50},
            "nodePools": GPU_POOLS,
            "serving": {"dynamicBatching": {"maxQueueDelayMicroseconds": 200}},
        },
    }


def ctr_model() -> ModelCase:
    import torch

    program = torch.export.load(str(CTR_SPEC.parent / "model.pt2")).module()
    data = dict(np.load(CTR_SPEC.parent / "validation.npz"))

    def reference(x: dict[str, Array]) -> dict[str, Array]:
        with torch.no_grad():
            out = program(torch.from_numpy(x["sparse"]), torch.from_numpy(x["dense"]))
        return {"score": out.numpy()}

    return ModelCase("ctr-ranker", CTR_SPEC, reference, {k: v[:64] for k, v in data.items()})


def _transformer_module() -> Any:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, dim: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.norm1 = nn.LayerNorm(dim)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.norm2 = nn.LayerNorm(dim)
            self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, d = x.shape
            q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
            q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
            attn = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
            x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, t, d))
            return x + self.ff(self.norm2(x))  # type: ignore[no-any-return]

    class TinyTransformer(nn.Module):
        def __init__(self, vocab: int = 100, seq: int = 16, dim: int = 32, classes: int = 4) -> None:
            super().__init__()
            self.tokens = nn.Embedding(vocab, dim)
            self.position = nn.Parameter(torch.randn(1, seq, dim) * 0.02)
            self.blocks = nn.Sequential(Block(dim, 4), Block(dim, 4))
            self.norm = nn.LayerNorm(dim)
            self.head = nn.Linear(dim, classes)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            x = self.blocks(self.tokens(tokens) + self.position)
            return self.head(self.norm(x).mean(dim=1))  # type: ignore[no-any-return]

    torch.manual_seed(0)
    return TinyTransformer().eval()


def transformer_model(workdir: Path) -> ModelCase:
    import torch

    module = _transformer_module()
    example = torch.randint(0, 100, (2, 16))
    traced = torch.jit.trace(module, example)  # type: ignore[no-untyped-call]
    path = workdir / "transformer.pt"
    torch.jit.save(traced, str(path))
    model = {
        "source": {"uri": "file:transformer.pt", "format": "torchscript"},
        "inputs": [{"name": "tokens", "dataType": "INT64", "dims": [16]}],
        "outputs": [{"name": "logits", "dataType": "FP32", "dims": [4]}],
        "maxBatchSize": 32,
    }
    checks: list[dict[str, Any]] = [
        {"metric": "MeanAbsError", "max": "0.05"},
        {"metric": "Cosine", "min": "0.99"},
        {"metric": "TopKOverlap", "k": 1, "min": "0.8"},
    ]
    spec_path = workdir / "transformer.yaml"
    spec_path.write_text(yaml.safe_dump(_spec("tiny-transformer", model, checks)))
    tokens = np.random.default_rng(3).integers(0, 100, (48, 16)).astype(np.int64)

    def reference(x: dict[str, Array]) -> dict[str, Array]:
        with torch.no_grad():
            return {"logits": module(torch.from_numpy(x["tokens"])).numpy()}

    return ModelCase("tiny-transformer", spec_path, reference, {"tokens": tokens})


def cnn_model(workdir: Path) -> ModelCase:
    import torch
    from torch import nn

    torch.manual_seed(1)
    module = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()
    path = workdir / "cnn.onnx"
    torch.onnx.export(
        module,
        (torch.randn(2, 1, 8, 8),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    images = np.random.default_rng(5).standard_normal((64, 1, 8, 8)).astype(np.float32)
    np.savez(workdir / "cnn-validation.npz", image=images)
    checks: list[dict[str, Any]] = [{"metric": "MaxAbsError", "max": "0.1"}, {"metric": "Cosine", "min": "0.995"}]
    model = {"source": {"uri": "file:cnn.onnx", "format": "onnx"}, "maxBatchSize": 16}
    spec_path = workdir / "cnn.yaml"
    spec_path.write_text(yaml.safe_dump(_spec("small-cnn", model, checks, validation="file:cnn-validation.npz")))

    def reference(x: dict[str, Array]) -> dict[str, Array]:
        with torch.no_grad():
            return {"logits": module(torch.from_numpy(x["image"])).numpy()}

    return ModelCase("small-cnn", spec_path, reference, {"image": images[:32]})


def embedding_bag_model(workdir: Path, fmt: str) -> ModelCase:
    """``nn.EmbeddingBag`` (exported as Loop / If control flow), as torchscript or torch-export."""
    import torch
    from torch import nn

    class BagModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bag = nn.EmbeddingBag(50, 8, mode="mean")
            self.fc = nn.Linear(8, 1)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.fc(self.bag(ids)))

    torch.manual_seed(2)
    module = BagModel().eval()
    example = torch.randint(0, 50, (4, 5))
    if fmt == "torchscript":
        path = workdir / "bag.pt"
        torch.jit.save(torch.jit.trace(module, example), str(path))  # type: ignore[no-untyped-call]
    else:
        path = workdir / "bag.pt2"
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.export.save(torch.export.export(module, (example,), dynamic_shapes={"ids": {0: batch}}), str(path))
    model = {
        "source": {"uri": f"file:{path.name}", "format": fmt},
        "inputs": [{"name": "ids", "dataType": "INT64", "dims": [5]}],
        "outputs": [{"name": "p", "dataType": "FP32", "dims": [1]}],
        "maxBatchSize": 32,
    }
    spec = _spec(f"bag-{fmt}", model, [{"metric": "MaxAbsError", "max": "0.01"}])
    spec["spec"]["tiers"] = spec["spec"]["tiers"][:3]
    spec_path = workdir / f"bag-{fmt}.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    ids = np.random.default_rng(7).integers(0, 50, (40, 5)).astype(np.int64)

    def reference(x: dict[str, Array]) -> dict[str, Array]:
        with torch.no_grad():
            return {"p": module(torch.from_numpy(x["ids"])).numpy()}

    return ModelCase(f"bag-{fmt}", spec_path, reference, {"ids": ids})
