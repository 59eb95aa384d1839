"""The exporter tables fxprune builds once per process instead of once per ONNX export."""
from __future__ import annotations

import torch

from fxprune.onnx import decomposition_tables as tables


def test_the_cia_walk_runs_again_only_for_new_registrations(monkeypatch):
    monkeypatch.setattr(tables, "_WALKED", set())
    listed = ["aten::a", "aten::b"]
    monkeypatch.setattr(tables, "_registrations", lambda: list(listed))
    walks = []
    materialize = tables._walked_once(lambda: walks.append(len(listed)))
    materialize()
    materialize()
    assert walks == [2]
    listed.append("mylib::new_op")  # a custom op library loaded since: walked again
    materialize()
    materialize()
    assert walks == [2, 3]


def test_the_table_and_its_split_are_kept_per_content_and_handed_out_as_copies(monkeypatch):
    monkeypatch.setattr(tables, "_TABLES", {})
    monkeypatch.setattr(tables, "_SPLITS", {})
    builds, splits = [], []

    def build(ops):
        builds.append(sorted(ops))
        return {op: len(op) for op in ops}

    def split(table):
        splits.append(sorted(table))
        cia = {op: table.pop(op) for op in list(table) if op.startswith("cia")}
        return cia, table

    table, split_table = tables._table_once(build), tables._split_once(split)
    first = table({"cia_a", "b"})
    first["junk"] = 0  # the caller's copy
    assert table({"b", "cia_a"}) == {"cia_a": 5, "b": 1} and builds == [["b", "cia_a"]]
    assert table({"c"}) == {"c": 1} and len(builds) == 2
    cia, rest = split_table({"cia_a": 5, "b": 1})
    rest["junk"] = 0
    assert split_table({"cia_a": 5, "b": 1}) == ({"cia_a": 5}, {"b": 1}) and len(splits) == 1
    assert split_table({"cia_a": 6, "b": 1}) == ({"cia_a": 6}, {"b": 1}) and len(splits) == 2  # other contents
    assert split_table({"cia_a": [5], "b": 1}) == ({"cia_a": [5]}, {"b": 1}) and len(splits) == 3  # unhashable: afresh
    assert len(tables._SPLITS) == 2


def test_an_export_inside_the_block_matches_one_outside(tmp_path):
    from torch._export import utils
    from torch.export import exported_program

    import fxprune

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.GELU(), torch.nn.Upsample(scale_factor=2))
    x = torch.randn(1, 3, 8, 8)
    before = utils._materialize_cpp_cia_ops, exported_program._split_decomp_table_to_cia_and_python_decomp
    programs = []
    for _ in range(2):  # the second time from the kept tables
        with tables.reused_decomposition_tables():
            programs.append(torch.export.export(net, (x,)).run_decompositions())
    assert (utils._materialize_cpp_cia_ops, exported_program._split_decomp_table_to_cia_and_python_decomp) == before
    programs.append(torch.export.export(net, (x,)).run_decompositions())
    targets = [[str(n.target) for n in p.graph.nodes] for p in programs]
    assert targets[0] == targets[1] == targets[2]
    for _ in range(2):
        report = fxprune.export_onnx(net, tmp_path / "net.onnx", x)
        assert report.max_abs_error <= report.tolerance
