"""fp16 and int8 of a model whose export has control flow (EmbeddingBag -> Loop / If), both torch formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.triton_models import embedding_bag_model

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fmt", ["torchscript", "torch-export"])
def test_embedding_bag_tiers_build_and_match_torch(fmt: str, tmp_path: Path) -> None:
    import onnx

    from model_repo_builder import accuracy as acc
    from model_repo_builder.pipeline import BuildOptions, build, load_spec
    from model_repo_builder.runtime import run_batched, session

    case = embedding_bag_model(tmp_path, fmt)
    result = build(
        BuildOptions(
            spec_path=case.spec_path,
            out=tmp_path / "repo",
            target="triton",
            profile=False,
            cache_dir=tmp_path / "cache",
        )
    )
    tiers = {t.name: t for t in result.manifest.tiers}
    assert {n: t.state for n, t in tiers.items()} == {"fp32": "Ready", "fp16": "Ready", "int8": "Ready"}, tiers
    fp16_file = tmp_path / "repo" / "fp16" / "1" / "model.onnx"
    graph = onnx.load(str(fp16_file)).graph
    loops = [n for n in graph.node if n.op_type == "Loop"]
    assert loops  # the control flow is still there, kept in fp32
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in graph.initializer)  # the rest is fp16
    checks = acc.checks_from_spec(load_spec(case.spec_path).spec.accuracy.checks)
    reference = case.reference(case.inputs)
    for name in tiers:
        outputs = run_batched(session(tmp_path / "repo" / name / "1" / "model.onnx"), case.inputs, 32)
        evaluation = acc.evaluate(reference, outputs, checks)
        assert evaluation.passed, (name, evaluation.failures)


def test_a_tier_failing_its_checks_is_failed_with_the_numbers(tmp_path: Path) -> None:
    import yaml

    from model_repo_builder.pipeline import BuildOptions, build
    from tests.support.triton_models import cnn_model

    case = cnn_model(tmp_path)
    spec = yaml.safe_load(case.spec_path.read_text())
    spec["spec"]["accuracy"]["checks"] = [{"metric": "MaxAbsError", "max": "0.000001"}]
    case.spec_path.write_text(yaml.safe_dump(spec))
    result = build(
        BuildOptions(
            spec_path=case.spec_path, out=tmp_path / "repo", target="local", profile=False, cache_dir=tmp_path / "cache"
        )
    )
    tiers = {t.name: t for t in result.manifest.tiers}
    assert tiers["fp32"].state == "Ready"  # graph optimisation keeps the numbers
    for name in ("fp16", "int8"):
        tier = tiers[name]
        assert (tier.state, tier.reason, tier.path) == ("Failed", "AccuracyCheckFailed", None)
        assert "MaxAbsError" in tier.message and "(needs <= 1e-06)" in tier.message
        assert tier.accuracy["MaxAbsError"] > 1e-6
    assert sorted(p.name for p in (tmp_path / "repo").iterdir() if p.is_dir()) == ["fp32"]
