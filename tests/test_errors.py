"""Every fxprune error carries structured fields, set where it is raised, and pickles whole."""
from __future__ import annotations

import pickle
import warnings

import pytest
import torch
from torch import nn

import fxprune
from fxprune import errors
from fxprune.checkpoint import TrainingInterrupted, read_checkpoint
from fxprune.models import build
from fxprune.pass_infra import PassError
from fxprune.onnx import OnnxExportError
from fxprune.routing.variants import RoutingError
from fxprune.weights import NoPretrainedWeightsError, load_state

X = torch.randn(1, 3, 12, 12)


def roundtrip(error: BaseException) -> BaseException:
    """The error after pickling; its type, message and fields must survive."""
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error) and again.args == error.args
    if isinstance(error, errors.FxpruneError):
        assert again.details() == error.details()
    return again


def test_spec_errors_carry_field_value_and_owners():
    with pytest.raises(fxprune.SpecError) as caught:
        fxprune.Spec(ratio=2)
    assert (caught.value.field, caught.value.value, caught.value.owners) == ("ratio", 2, ())
    with pytest.raises(fxprune.SpecError) as caught:
        fxprune.Spec(method="sls", budget=0.5, ratio=0.3)
    error = roundtrip(caught.value)
    assert (error.field, error.value, error.owners) == ("ratio", 0.3, ("l1", "assl"))
    assert error.details() == {"field": "ratio", "value": 0.3, "owners": ("l1", "assl")}
    assert str(error).startswith("spec field 'ratio': is a setting of method l1 / assl, not of 'sls'")
    with pytest.raises(fxprune.SpecError) as caught:
        fxprune.Spec(method="nm", n=3, m=4, hardware="2:4")
    assert (caught.value.field, caught.value.value) == ("n", 3)
    with pytest.raises(fxprune.SpecError) as caught:
        fxprune.TrainConfig(task="colorize")
    assert (caught.value.field, caught.value.value) == ("train.task", "colorize")


def test_spec_errors_keep_their_fields_through_a_file_and_a_stage(tmp_path):
    bad = tmp_path / "spec.yaml"
    bad.write_text("method: nm\nn: 2\nm: 4\nreg_step: 0.5\n")
    with pytest.raises(fxprune.SpecError) as caught:
        fxprune.Spec.load(bad)
    assert (caught.value.field, caught.value.value, caught.value.owners) == ("reg_step", 0.5, ("assl",))
    assert str(bad) in str(caught.value)
    with pytest.raises(fxprune.SpecError) as caught:
        fxprune.compress(build("edsr", blocks=1, channels=8), [fxprune.Spec(ratio=0.5, round_to=1), {"ratio": 1.5}],
                         (X,))
    assert (caught.value.field, caught.value.value) == ("stages[1].ratio", 1.5)


def test_convert_of_a_wrong_model_says_what_it_got():
    with pytest.raises(fxprune.StageError) as caught:
        fxprune.convert(nn.Conv2d(3, 3, 1))
    error = roundtrip(caught.value)
    assert (error.where, error.expected, error.got) == ("convert", "prepared", "Conv2d")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = fxprune.prepare(build("edsr", blocks=1, channels=8), fxprune.Spec(method="nm", n=2, m=4), X)
        small = fxprune.convert(pruner)
    with pytest.raises(fxprune.StageError) as caught:
        fxprune.convert(pruner.model)
    assert caught.value.got == "prepared" and "pass the pruner, not pruner.model" in str(caught.value)
    with pytest.raises(fxprune.StageError) as caught:
        fxprune.convert(small)
    assert caught.value.got == small.meta["fxprune"].stage


def test_a_corrupt_checkpoint_names_its_file(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(fxprune.CheckpointError) as caught:
        read_checkpoint(tmp_path)
    error = roundtrip(caught.value)
    assert error.path == str(tmp_path / "checkpoint.pt") and "corrupt or partial" in str(error)
    with pytest.raises(fxprune.CheckpointError) as caught:
        read_checkpoint(tmp_path / "elsewhere")
    assert caught.value.path == str(tmp_path / "elsewhere" / "checkpoint.pt")
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"\x00garbage")
    with pytest.raises(fxprune.CheckpointError) as caught:
        load_state(weights)
    assert caught.value.path == str(weights)


def test_a_missing_or_corrupt_model_file_names_its_path(tmp_path):
    for name, content in (("missing.pt2", None), ("corrupt.pt2", b"PK\x03\x04 truncated")):
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(fxprune.CheckpointError) as caught:
            fxprune.load(path)
        assert roundtrip(caught.value).path == str(path)


def test_a_missing_onnx_file_names_its_path(tmp_path):
    from fxprune.runtime import open_session

    with pytest.raises(fxprune.InferenceError) as caught:
        open_session(tmp_path / "absent.onnx")
    assert roundtrip(caught.value).path == str(tmp_path / "absent.onnx")


def test_an_onnx_parity_error_carries_the_measured_error(tmp_path):
    from fxprune.onnx import check_onnx_parity, export_onnx

    net = nn.Conv2d(3, 4, 3, padding=1).eval()
    path = tmp_path / "net.onnx"
    export_onnx(net, path, X)
    with torch.no_grad():
        net.weight.add_(1.0)  # PyTorch now computes something else than the file
    with pytest.raises(errors.ParityError) as caught:
        check_onnx_parity(net, path, X)
    error = roundtrip(caught.value)
    assert error.max_error is not None and error.max_error > error.tolerance > 0
    assert error.input_shapes and len(error.input_shapes[0]) == 4


def test_a_foreign_pruner_state_is_a_checkpoint_error_without_a_path():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = fxprune.prepare(build("edsr", blocks=1, channels=8), fxprune.Spec(method="nm", n=2, m=4), X)
    with pytest.raises(fxprune.CheckpointError) as caught:
        pruner.load_state_dict({"format": "something else"})
    assert roundtrip(caught.value).path is None


def test_a_converted_model_that_differs_reports_its_error_and_tolerance():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = fxprune.prepare(build("edsr", blocks=1, channels=8), fxprune.Spec(method="nm", n=2, m=4), X)
        small = fxprune.convert(pruner)
    with torch.no_grad():
        small.get_parameter("tail.0.weight").add_(1.0)
    with pytest.raises(fxprune.ParityError) as caught:
        pruner._check(small)
    error = roundtrip(caught.value)
    assert error.max_error > error.tolerance > 0 and error.input_shapes == ((1, 3, 12, 12),)


def test_an_op_without_a_rule_is_named_in_strict_mode():
    class CumMax(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.out = nn.Conv2d(8, 3, 3, padding=1)

        def forward(self, x):
            return self.out(torch.ops.aten.cummax(self.conv(x), 1)[0])

    with pytest.raises(fxprune.UnsupportedOpError) as caught:
        fxprune.analyze(CumMax(), X, strict=True)
    error = roundtrip(caught.value)
    assert "cummax" in error.target and error.node == "cummax" and "cummax" in error.hint


@pytest.mark.parametrize("error", [
    errors.FxpruneError("plain"),
    errors.CaptureError("export failed", module="body.0", hint="try opaque_fallback"),
    errors.UnsupportedOpError("cumsum", "aten.cumsum.default", "register a rule"),
    errors.SpecError("ratio", "must be a fraction", value=2.0, owners=("l1",)),
    errors.StageError("no", where="convert", expected="prepared", got="Conv2d"),
    errors.CheckpointError("corrupt", path="/tmp/x.pt"),
    errors.ParityError("differs", max_error=0.5, tolerance=1e-5, input_shapes=[(1, 3, 8, 8)]),
    errors.VerificationError("differs", node="conv2d", op="aten.conv2d.default", groups=(1,), max_error=0.1,
                             tolerance=1e-5, input_shapes=((1, 3, 8, 8),), report=[{"group": 1}]),
    errors.InferenceError("ORT failed", path="m.onnx", input_shape=(1, 3, 8, 8)),
    TrainingInterrupted("SIGTERM", 3, 10, None),
    PassError("pass failed"),
    OnnxExportError("no exporter"),
    RoutingError("no route"),
    NoPretrainedWeightsError("none ship"),
])
def test_every_error_pickles_with_its_fields(error):
    again = roundtrip(error)
    assert vars(again) == vars(error)


def test_every_error_class_declares_its_fields():
    """Each class of fxprune.errors names its structured fields, and a bare message still works."""
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.FxpruneError)]
    assert len(classes) == 10
    for cls in classes:
        assert cls is errors.FxpruneError or cls.fields, cls.__name__
    assert fxprune.CheckpointError("bare").details() == {"path": None}
    assert set(fxprune.VerificationError("bare").details()) == {"max_error", "tolerance", "input_shapes", "node",
                                                                 "op", "groups", "report"}
