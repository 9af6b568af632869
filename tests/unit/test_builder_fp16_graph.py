"""The fp16 graph repairs on small hand-made ONNX graphs (onnx only, no torch, no onnxruntime)."""

from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, ValueInfoProto, helper  # noqa: E402

from model_repo_builder.tiers.fp16 import drop_noop_casts, fix_cast_targets, fix_control_flow_outer_refs  # noqa: E402


def _vi(name: str, elem: int) -> ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, [2])


def test_noop_casts_are_bypassed_but_graph_outputs_kept() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Cast", ["r"], ["c"], to=TensorProto.FLOAT, name="noop"),
        helper.make_node("Cast", ["c"], ["h"], to=TensorProto.FLOAT16, name="real"),
        helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT16, name="noop-but-output"),
    ]
    graph = helper.make_graph(nodes, "g", [_vi("x", TensorProto.FLOAT)], [_vi("y", TensorProto.FLOAT16)])
    model = helper.make_model(graph)
    assert drop_noop_casts(model) == 1
    assert [n.name for n in model.graph.node] == ["relu", "real", "noop-but-output"]
    assert list(model.graph.node[1].input) == ["r"]


def test_cast_targets_follow_the_retyped_outputs() -> None:
    nodes = [helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT, name="cast")]
    graph = helper.make_graph(nodes, "g", [_vi("x", TensorProto.INT64)], [_vi("c", TensorProto.FLOAT)])
    graph.value_info.append(_vi("c", TensorProto.FLOAT16))
    model = helper.make_model(graph)
    assert fix_cast_targets(model) == 1
    assert model.graph.node[0].attribute[0].i == TensorProto.FLOAT16


def test_control_flow_bodies_get_fp32_outer_values() -> None:
    # then-branch reads the outer float16 table "w" by name; else-branch reads the int "i"
    then_graph = helper.make_graph(
        [helper.make_node("Identity", ["w"], ["t_out"], name="then_id")], "then", [], [_vi("t_out", TensorProto.FLOAT)]
    )
    else_graph = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["e_out"], to=TensorProto.FLOAT, name="else_cast")],
        "else",
        [],
        [_vi("e_out", TensorProto.FLOAT)],
    )
    nodes = [
        helper.make_node("Cast", ["w32"], ["w"], to=TensorProto.FLOAT16, name="to16"),
        helper.make_node("If", ["cond"], ["y"], then_branch=then_graph, else_branch=else_graph, name="if"),
    ]
    inputs = [
        _vi("w32", TensorProto.FLOAT),
        _vi("i", TensorProto.INT64),
        helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
    ]
    graph = helper.make_graph(nodes, "g", inputs, [_vi("y", TensorProto.FLOAT)])
    model = helper.make_model(graph)
    assert fix_control_flow_outer_refs(model) == 1
    names = [n.name for n in model.graph.node]
    assert names == ["to16", "fulcrum_fp32_cast_0", "if"]
    cast = model.graph.node[1]
    assert list(cast.input) == ["w"] and cast.attribute[0].i == TensorProto.FLOAT
    then_branch = next(a.g for a in model.graph.node[2].attribute if a.name == "then_branch")
    assert list(then_branch.node[0].input) == [cast.output[0]]
    else_branch = next(a.g for a in model.graph.node[2].attribute if a.name == "else_branch")
    assert list(else_branch.node[0].input) == ["i"]  # not float16: untouched
