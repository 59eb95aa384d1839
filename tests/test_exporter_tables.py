"""The exporter tables fxprune builds once per process instead of once per ONNX export."""
from __future__ import annotations

import torch

from fxprune.onnx import cia_ops


def test_the_cia_walk_runs_again_only_for_new_registrations(monkeypatch):
    monkeypatch.setattr(cia_ops, "_WALKED", set())
    listed = ["aten::a", "aten::b"]
    monkeypatch.setattr(cia_ops, "_registrations", lambda: list(listed))
    walks = []
    materialize = cia_ops._once(lambda: walks.append(len(listed)))
    materialize()
    materialize()
    assert walks == [2]
    listed.append("mylib::new_op")  # a custom op library loaded since: walked again
    materialize()
    materialize()
    assert walks == [2, 3]


def test_an_export_inside_the_block_matches_one_outside(tmp_path):
    from torch._export import utils

    import fxprune

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.GELU(), torch.nn.Upsample(scale_factor=2))
    x = torch.randn(1, 3, 8, 8)
    before = utils._materialize_cpp_cia_ops
    with cia_ops.materialized_cia_ops_once():  # the ops torch may keep whole are the same with the walk skipped
        inside = torch.export.export(net, (x,)).run_decompositions()
    assert utils._materialize_cpp_cia_ops is before
    outside = torch.export.export(net, (x,)).run_decompositions()
    assert [str(n.target) for n in inside.graph.nodes] == [str(n.target) for n in outside.graph.nodes]
    report = fxprune.export_onnx(net, tmp_path / "net.onnx", x)
    assert report.max_abs_error <= report.tolerance
