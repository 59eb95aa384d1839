"""The typed stage record (fxprune.record): views, history, provenance, save/load, the stages report."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

import fxprune
from fxprune.errors import StageError
from fxprune.model_io import read_metadata
from fxprune.models import build
from fxprune.record import StageRecord, record_of
from fxprune.report import ModelStats, write_report

from cli_checks import in_process

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DATA = Path(__file__).parent / "data"
X = torch.randn(1, 3, 16, 16)
L1 = fxprune.Spec(method="l1", ratio=0.5, round_to=4)
NM = fxprune.Spec(method="nm", n=2, m=8)


@pytest.fixture(scope="module")
def staged():
    """EDSR compressed by L1 channels then one-shot N:M, as a list of stages."""
    torch.manual_seed(0)
    model = build("edsr", blocks=2, channels=16).eval()
    return model, fxprune.compress(model, [L1, NM], X)


def test_record_is_typed_and_reads_like_the_plain_dict(staged):
    _, small = staged
    record = small.meta["fxprune"]
    assert isinstance(record, StageRecord) and record is record_of(small)
    assert record["stage"] == record.stage == "converted" and record["method"] == "nm"
    assert record["spec"] == NM.to_dict() and record.get("latency") is None and "latency" not in record
    assert {"stage", "method", "spec", "groups", "keep", "nm", "steps", "macs", "stages"} <= set(record)
    assert record["nm"] and all(v["n"] == 2 and v["m"] == 8 for v in record["nm"].values())
    assert record["capture"]["model_class"] == "EDSR" and record["capture"]["input_shapes"] == [[1, 3, 16, 16]]
    record["train"] = {"steps": [1]}  # the declared fields can be set by key, as the dict allowed
    assert record.train == {"steps": [1]}
    record["train"] = None
    with pytest.raises(KeyError, match="not a field"):
        record["tarin"] = {}
    with pytest.raises(KeyError):
        record["tarin"]


def test_each_stage_goes_into_the_history(staged):
    model, small = staged
    record = record_of(small)
    (first,) = record.history
    assert first.method == "l1" and first.stage == "converted" and first.history == []
    assert first.spec == L1.for_run(fine_tunes=False).to_dict() and first.keep and first.nm is None
    assert [g["kept"] for g in first.groups][:4] == [8, 8, 8, 8]  # the channel decisions of the first stage
    assert [r.method for r in record.chain()] == ["l1", "nm"]
    dense = (fxprune.count_macs(model, X), fxprune.count_params(model))
    assert (first.cost.input_macs, first.cost.input_params) == dense
    assert (record.cost.input_macs, record.cost.input_params) == (first.cost.macs, first.cost.params)
    assert record.cost.macs == fxprune.count_macs(small, X) < first.cost.macs
    overall = record["stages"][-1]
    assert overall["macs_of_original"] == pytest.approx(fxprune.count_macs(small, X) / dense[0])
    assert overall["params_of_original"] == pytest.approx(fxprune.count_params(small) / dense[1])


def test_compress_on_a_compressed_model_keeps_the_history():
    torch.manual_seed(0)
    model = build("edsr", blocks=2, channels=16).eval()
    once = fxprune.compress(model, L1, X)
    twice = fxprune.compress(once, fxprune.Spec(method="l1", ratio=0.5, round_to=2), X)
    record = record_of(twice)
    assert [r.method for r in record.chain()] == ["l1", "l1"]
    assert record.history[0].keep == record_of(once).keep and record.history[0].history == []
    assert record.groups[0]["units"] == 8 and record.groups[0]["kept"] == 4  # counts of the sliced model
    assert record_of(once).history == []  # the input's record is not touched
    pruner = fxprune.prepare(twice, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=2), X)
    prepared = record_of(pruner.model, stage="prepared")
    assert prepared.method == "assl" and [r.method for r in prepared.history] == ["l1", "l1"]


def test_convert_checks_provenance_from_the_record():
    model = build("edsr", blocks=1, channels=8).eval()
    pruner = fxprune.prepare(model, fxprune.Spec(method="assl", ratio=0.5, round_to=1, steps=2), X)
    assert record_of(pruner.model, stage="prepared").spec["method"] == "assl"
    del pruner.model.meta["fxprune"]  # the right type, but its model was not made by prepare
    with pytest.raises(StageError, match="did not make"):
        fxprune.convert(pruner)
    small = fxprune.compress(model, L1, X)
    with pytest.raises(StageError, match="already converted by 'l1'"):
        fxprune.convert(small)
    nm = fxprune.prepare(model, fxprune.Spec(method="nm", n=2, m=4), X)
    with pytest.raises(StageError, match="not pruner.model"):
        fxprune.convert(nm.model)
    assert record_of(fxprune.convert(nm)).method == "nm"


def test_save_and_load_keep_the_record(staged, tmp_path):
    _, small = staged
    path = fxprune.save(small, tmp_path / "small.pt2", X)
    loaded = fxprune.load(path)
    assert loaded.meta["fxprune"] == record_of(small)  # history, costs and decisions included
    assert read_metadata(path)["record"] == record_of(small).to_dict()
    assert fxprune.count_macs(loaded, X) == fxprune.count_macs(small, X)  # N:M densities from the record
    assert fxprune.check_nm(loaded).ok


def test_record_json_round_trip_and_old_plain_dicts(staged):
    _, small = staged
    record = record_of(small)
    data = json.loads(json.dumps(record.to_dict()))
    assert StageRecord.from_dict(data) == record and "stages" not in data
    old = {"stage": "converted", "method": "l1", "spec": L1.to_dict(), "groups": record.history[0].groups,
           "keep": {"0": [0, 1]}, "train": {"steps": [1, 2]}}  # what gm.meta["fxprune"] held before the record
    upgraded = StageRecord.from_dict(old)
    assert upgraded.keep == {0: [0, 1]} and upgraded["train"] == {"steps": [1, 2]} and "stages" not in upgraded
    with pytest.raises(ValueError, match="not an fxprune stage record"):
        StageRecord.from_dict({"stage": "trained"})


def test_loads_a_file_written_before_the_record():
    # tests/data/make_format1_fixture.py wrote it (L1 then N:M on EDSR, the CLI's report) before this change
    path = DATA / "edsr_l1_nm_format1.pt2"
    assert "record" not in read_metadata(path)
    loaded = fxprune.load(path)
    io = torch.load(DATA / "edsr_l1_nm_format1_io.pt")
    # io["y"] was computed on another machine: float32 convs sum in an order that depends on the
    # SIMD width (an AVX-512 machine is 1.19e-7 off, the output's peak is 0.37); a wrong weight or a
    # lost N:M mask moves it by 1e-2 and more
    torch.testing.assert_close(loaded(io["x"]), io["y"], rtol=1e-5, atol=1e-6)
    record = record_of(loaded)
    assert record.method == "nm" and record.spec["n"] == 2 and len(record.groups) == 5 and record.nm
    assert fxprune.count_macs(loaded, io["x"]) == 614400  # the N:M count the file's code gave
    assert fxprune.check_nm(loaded).ok


def test_the_archive_carries_no_large_example_input(tmp_path):
    torch.manual_seed(0)
    small = fxprune.compress(build("edsr", blocks=2, channels=16).eval(), L1, X)
    sizes = {}
    for shape in [(1, 3, 16, 16), (1, 3, 360, 640)]:
        path = fxprune.save(small, tmp_path / f"m{shape[2]}.pt2", torch.randn(shape))
        sizes[shape[2]] = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            assert not [i.filename for i in archive.infolist() if "sample_inputs" in i.filename and i.file_size > 4096]
        assert read_metadata(path)["example_input_shape"] == list(shape)
    assert sizes[360] < sizes[16] + 10_000  # a 1x3x360x640 input used to add 5.5 MB
    y = torch.randn(1, 3, 24, 40)
    assert torch.equal(fxprune.load(tmp_path / "m360.pt2")(y), small(y))


def test_report_gives_each_stage_and_overall_fractions(staged, tmp_path):
    _, small = staged
    record = record_of(small)
    path = write_report(tmp_path, record, ModelStats(100, 1000), ModelStats(50, 100), (16, 16), "edsr")
    text = path.read_text()
    stages = text.split("## Stages")[1].split("##")[0]
    rows = [line for line in stages.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[2].strip() for row in rows] == ["`l1`", "`nm`", ""]
    assert "ratio 0.5, round_to 4" in rows[0] and "n 2, m 8" in rows[1]
    first, last = record["stages"]
    assert f"{first['macs_of_input']:.3f}" in rows[0] and f"{last['macs_of_input']:.3f}" in rows[1]
    assert rows[2].startswith("| overall") and f"**{last['macs_of_original']:.3f}**" in rows[2]
    assert f"**{last['params_of_original']:.3f}**" in rows[2]
    assert (tmp_path / "stages.png").stat().st_size > 1000
    single = write_report(tmp_path / "one", record.history[0], ModelStats(100, 1000), ModelStats(50, 100), (16, 16), "e")
    assert "## Stages" not in single.read_text()


def test_cli_report_of_a_staged_run(tmp_path):
    """Through the same fxprune.cli.main as the executable (the report and files are checked, not the process)."""
    spec = tmp_path / "stages.yaml"
    spec.write_text("stages:\n  - {method: l1, ratio: 0.5, round_to: 8}\n  - {method: nm, n: 2, m: 8}\n")
    out = tmp_path / "out"
    result = in_process("compress", "edsr", "--blocks", "2", "--channels", "16", "--spec", str(spec), "-q", "-o", str(out),
                        "--input-size", "24", "24")
    assert result.returncode == 0, result.stderr
    assert "| overall |" in result.stdout and "| 1 | `l1` | ratio 0.5, round_to 8 |" in result.stdout
    report = (out / "report.md").read_text()
    assert "## Stages" in report and "| 2 | `nm` | n 2, m 8 |" in report and (out / "stages.png").is_file()
    record = record_of(fxprune.load(out / "model.pt2"))
    assert [r.method for r in record.chain()] == ["l1", "nm"]
    assert "8/16" in (out / "coupled.html").read_text()  # the page shows the channel stage's decisions on the dense graph
