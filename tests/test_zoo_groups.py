"""Hand-derived channel groups for every model of the zoo.

Every expectation below was worked out from the model's source code (fxprune/models/*.py), not
copied from the analysis output. Each model is built small with explicit kwargs, and for every
group we state its kind, its number of units, the channels per unit in its producers, its
producers (the layers whose *output* channels it holds) and, where it says something, its
consumers (the layers whose *input* channels it holds). Each model's list is complete: it has
exactly as many groups as the analysis must find.

Conventions used in the derivations:

* residual adds, ``x * attention``, gates and contractions between two activations tie channels
  index for index; when such a tie joins channels that the layers themselves did not already hold
  together (two producers of a trunk, the two halves of a gate, q/k/v thirds split by a chunk), the
  group is "coupled";
* model input/output and ops with no exact form over kept channels (prod, max with indices, a
  softmax over keys) make channels "fixed"; LayerNorm, mean/var and softmax over channels do not;
* ``PixelShuffle(r)`` makes units of r² channels in the conv before it; ``chunk(2)`` + ``x1 * x2``
  makes units of 2; attention heads make units of the q/k/v thirds of one head (3·C/heads);
* a depthwise conv's output is in the group of its input, and it is listed as a producer;
* a channel space of size 1 (a batch of one, a single-slope PReLU) is no channel at all.

``unit`` is the number of channels one unit spans in the group's first producer (its lowest layer).
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import fxprune
from fxprune.models import ZOO, build, names
from helpers import zoo_names


@dataclass(frozen=True)
class G:
    """One expected group."""

    kind: str
    channels: int
    producers: frozenset[str]
    unit: int = 1
    consumers: frozenset[str] | None = None
    xfail: str | None = None  # why the analysis is known to get this group wrong
    xfail_consumers: str | None = None  # why it is known to get only the consumers wrong

    @property
    def label(self) -> str:
        return min(self.producers)


def g(kind: str, channels: int, producers, unit: int = 1, consumers=None, **xfails: str) -> G:
    return G(kind, channels, frozenset(producers), unit, None if consumers is None else frozenset(consumers), **xfails)


def expect(graph: fxprune.ChannelGraph, e: G, *, consumers: bool = True) -> fxprune.Group:
    """Find the group by one of its producers and compare it with the expectation."""
    group = graph.group_of(e.label)
    where = f"\n{group}\n{graph.summary()}"
    assert set(group.producers) == e.producers, where
    assert (group.kind, group.channels, group.unit) == (e.kind, e.channels, e.unit), where
    assert group.prunable == (0 if e.kind == "fixed" else e.channels), where
    if consumers and e.consumers is not None:
        assert set(group.consumers) == e.consumers, where
    return group


# --------------------------------------------------------------------------- shared pieces
def standard_tail(channels: int) -> list[G]:
    """common.standard_upsampler at scale 2: tail.0 conv C -> 4C + PixelShuffle(2) (C units of 4,
    read by tail.2), tail.2 conv C -> 3 is the model output."""
    return [
        g("free", channels, {"tail.0"}, unit=4, consumers={"tail.2"}),
        g("fixed", 3, {"tail.2"}),
    ]


def residual_first_convs(prefixes: list[str], channels: int) -> list[G]:
    """The first conv of a residual block feeds only the block's second conv: free."""
    return [g("free", channels, {f"{p}.conv1"}, consumers={f"{p}.conv2"}) for p in prefixes]


def nafblock(p: str, c: int) -> list[G]:
    """NAFBlock(c) named ``p``. conv1 (C -> 2C) and the depthwise conv2 share channels; SimpleGate
    pairs channel k with k + C (units of 2); ``x * sca(x)`` ties sca.1's output to the gate's, so
    the three are coupled. conv4 (C -> 2C) + SimpleGate: C units of 2, coupled by the gate.
    conv3 and conv5 join the block's trunk (listed with the trunk)."""
    return [
        g("coupled", c, {f"{p}.conv1", f"{p}.conv2", f"{p}.sca.1"}, unit=2,
          consumers={f"{p}.conv2", f"{p}.sca.1", f"{p}.conv3"}),
        g("coupled", c, {f"{p}.conv4"}, unit=2, consumers={f"{p}.conv5"}),
    ]


# --------------------------------------------------------------------------- the zoo
def edsr_body() -> list[G]:
    # head -> [ResBlock x2, conv] (+ head) -> tail. Every block adds its conv2 to the trunk, the
    # body's last conv (body.2) is added to the head output: one coupled trunk.
    blocks = ["body.0", "body.1"]
    trunk = g("coupled", 16, {"head", "body.0.conv2", "body.1.conv2", "body.2"},
              consumers={"body.0.conv1", "body.1.conv1", "body.2", "tail.0"})
    return [trunk, *residual_first_convs(blocks, 16)]


def edsr() -> list[G]:
    return [*edsr_body(), *standard_tail(16)]


def edsr_light() -> list[G]:
    # The light tail: tail.0 conv C -> 3·2² + PixelShuffle(2) *is* the model output, so its
    # 3 units of 4 channels are fixed.
    return [*edsr_body(), g("fixed", 3, {"tail.0"}, unit=4)]


def rcan() -> list[G]:
    # groups=2 residual groups of one RCAB each. In an RCAB, ``y * sigmoid(expand(...))`` ties the
    # attention's expand to conv2, and ``x + ...`` ties both to the trunk; each residual group
    # adds its last conv, the body adds body.2: one coupled trunk of 8 producers.
    rcabs = ["body.0.body.0", "body.1.body.0"]
    trunk = g("coupled", 8, {"head", "body.2", "body.0.body.1", "body.1.body.1",
                             *(f"{p}.conv2" for p in rcabs), *(f"{p}.attention.expand" for p in rcabs)},
              consumers={"tail.0", "body.2", "body.0.body.1", "body.1.body.1",
                         *(f"{p}.conv1" for p in rcabs), *(f"{p}.attention.reduce" for p in rcabs)})
    # The squeeze conv (8 -> 8 // 4 = 2) feeds only the excitation conv.
    squeeze = [g("free", 2, {f"{p}.attention.reduce"}, consumers={f"{p}.attention.expand"}) for p in rcabs]
    return [trunk, *residual_first_convs(rcabs, 8), *squeeze, *standard_tail(8)]


def srresnet() -> list[G]:
    # head = conv9x9 + PReLU (one slope: no channel); blocks end in bn2 and are added to their
    # input; body ends in conv + BN (body.2, body.3) added to the head: one coupled trunk.
    trunk = g("coupled", 8, {"head.0", "body.0.conv2", "body.1.conv2", "body.2"},
              consumers={"body.0.conv1", "body.1.conv1", "body.2", "tail.0"})
    tail = [g("free", 8, {"tail.0"}, unit=4, consumers={"tail.3"}), g("fixed", 3, {"tail.3"})]
    return [trunk, *residual_first_convs(["body.0", "body.1"], 8), *tail]


def carn() -> list[G]:
    # blocks=2 cascading blocks of units=2 residual units, C = 4. Names: outer block i is
    # body.units.i (fusions body.fuse.i); its residual unit j is body.units.i.units.j (fusions
    # body.units.i.fuse.j).
    #
    # Block 0 runs on the head output h. Unit 0 adds its conv2 to h; unit 1 adds its conv2 to
    # fuse.0's output. The block's 3C concat [h, u0, u1] holds segments of both, so they merge into
    # one group; the outer 2C concat [h, block0] adds block 0's output (fuse.1), and the outer 3C
    # concat [h, block0, block1] adds block 1's output (body.units.1.fuse.1): 4C units.
    # Block 1 runs on body.fuse.0's output and merges it the same way with its own fuse.0: 2C units.
    # body.fuse.1 is the body output, read by the tail only.
    b0, b1 = "body.units.0", "body.units.1"
    units = [f"{b}.units.{j}" for b in (b0, b1) for j in range(2)]
    return [
        g("coupled", 16, {"head", f"{b0}.units.0.conv2", f"{b0}.fuse.0", f"{b0}.units.1.conv2",
                          f"{b0}.fuse.1", f"{b1}.fuse.1"},
          consumers={f"{b0}.units.0.conv1", f"{b0}.fuse.0", f"{b0}.units.1.conv1", f"{b0}.fuse.1",
                     "body.fuse.0", "body.fuse.1"}),
        g("coupled", 8, {"body.fuse.0", f"{b1}.units.0.conv2", f"{b1}.fuse.0", f"{b1}.units.1.conv2"},
          consumers={f"{b1}.units.0.conv1", f"{b1}.fuse.0", f"{b1}.units.1.conv1", f"{b1}.fuse.1"}),
        g("free", 4, {"body.fuse.1"}, consumers={"tail.0"}),
        *residual_first_convs(units, 4),
        *standard_tail(4),
    ]


def imdb(p: str) -> list[G]:
    """IMDB(8) named ``p``: d = 2 distilled, r = 6 remaining channels. conv1..conv3 (8 channels)
    are each split into a distilled part (into the concat) and a remaining part (read by the next
    conv); conv4 gives 2 distilled channels. The 8-channel concat is multiplied by the
    contrast-aware attention (cca.expand), coupling each distilled channel to one expand channel.
    The split inputs and the concat output join all of them: 8 + 8 + 8 + 2 = 26 units."""
    distill = g("coupled", 26, {f"{p}.conv1", f"{p}.conv2", f"{p}.conv3", f"{p}.conv4", f"{p}.cca.expand"},
                consumers={f"{p}.conv2", f"{p}.conv3", f"{p}.conv4", f"{p}.cca.reduce", f"{p}.fuse"})
    squeeze = g("free", 2, {f"{p}.cca.reduce"}, consumers={f"{p}.cca.expand"})  # 8 // 4 = 2
    return [distill, squeeze]


def imdn() -> list[G]:
    # Block outputs are fuse(...) + block input: the trunk holds head, each block's fuse and
    # body_conv (added to the head output). The concat of the two block outputs has both segments
    # in the trunk, read by the top-level fuse, whose output feeds body_conv. The light tail
    # (conv 8 -> 3·4, PixelShuffle(2)) is the model output: 3 fixed units of 4.
    trunk = g("coupled", 8, {"head", "blocks.0.fuse", "blocks.1.fuse", "body_conv"},
              consumers={"blocks.0.conv1", "blocks.1.conv1", "fuse", "tail.0"})
    return [trunk, *imdb("blocks.0"), *imdb("blocks.1"),
            g("free", 8, {"fuse"}, consumers={"body_conv"}), g("fixed", 3, {"tail.0"}, unit=4)]


def nafnet() -> list[G]:
    # width 8, one level: intro -> encoders.0.0 -> downs.0 (8 -> 16) -> middle.0 -> ups.0
    # (conv 16 -> 32 + PixelShuffle(2) -> 8) + skip -> decoders.0.0 -> ending (+ input).
    # Every NAFBlock normalizes its trunk with LayerNorm2d (mean/var over channels, exact over the
    # kept channels with the original count): both trunks are coupled. ups.0.0 joins the level-0 trunk with units of 4 (its first producer, intro, has 1).
    blocks = [("encoders.0.0", 8), ("middle.0", 16), ("decoders.0.0", 8)]
    level0 = g("coupled", 8, {"intro", "encoders.0.0.conv3", "encoders.0.0.conv5", "ups.0.0",
                            "decoders.0.0.conv3", "decoders.0.0.conv5"},
               consumers={"encoders.0.0.conv1", "encoders.0.0.conv4", "downs.0",
                          "decoders.0.0.conv1", "decoders.0.0.conv4", "ending"})
    level1 = g("coupled", 16, {"downs.0", "middle.0.conv3", "middle.0.conv5"},
               consumers={"middle.0.conv1", "middle.0.conv4", "ups.0.0"})
    return [level0, level1, *(e for p, c in blocks for e in nafblock(p, c)), g("fixed", 3, {"ending"})]


def espcn() -> list[G]:
    # conv1 (3 -> 8), conv2 (8 -> 4), conv3 (4 -> 3·2²) + PixelShuffle(2) = output.
    return [g("free", 8, {"conv1"}, consumers={"conv2"}), g("free", 4, {"conv2"}, consumers={"conv3"}),
            g("fixed", 3, {"conv3"}, unit=4)]


def fsrcnn() -> list[G]:
    # A plain chain; per-channel PReLU slopes only ride along. The transposed conv is the output.
    chain = [("feature.0", 8, "shrink.0"), ("shrink.0", 4, "mapping.0.0"), ("mapping.0.0", 4, "mapping.1.0"),
             ("mapping.1.0", 4, "expand.0"), ("expand.0", 8, "deconv")]
    return [*(g("free", c, {p}, consumers={n}) for p, c, n in chain), g("fixed", 3, {"deconv"})]


def dncnn() -> list[G]:
    # body: conv, relu, (conv, BN, relu) x 2, conv -> 3; the model returns x - body(x).
    chain = [("body.0", "body.2"), ("body.2", "body.5"), ("body.5", "body.8")]
    return [*(g("free", 8, {p}, consumers={n}) for p, n in chain), g("fixed", 3, {"body.8"})]


def vdsr() -> list[G]:
    return [g("free", 8, {"body.0"}, consumers={"body.2"}), g("free", 8, {"body.2"}, consumers={"body.4"}),
            g("fixed", 3, {"body.4"})]


def unet() -> list[G]:
    # depth 1, C = 4: encoder (3 -> 4 -> 4), max-pool, bottleneck (4 -> 8 -> 8), bilinear x2, concat
    # [upsampled bottleneck (8), skip (4)] -> decoder (12 -> 4 -> 4) -> tail (4 -> 3) + input.
    # The concat merges bottleneck.conv2 and encoders.0.conv2 into one group of 8 + 4 units,
    # each with one producer: free.
    return [
        g("free", 4, {"encoders.0.conv1"}, consumers={"encoders.0.conv2"}),
        g("free", 12, {"bottleneck.conv2", "encoders.0.conv2"}, consumers={"bottleneck.conv1", "decoders.0.conv1"}),
        g("free", 8, {"bottleneck.conv1"}, consumers={"bottleneck.conv2"}),
        g("free", 4, {"decoders.0.conv1"}, consumers={"decoders.0.conv2"}),
        g("free", 4, {"decoders.0.conv2"}, consumers={"tail"}),
        g("fixed", 3, {"tail"}),
    ]




def swinir() -> list[G]:
    # The default config (C = 32, 2 Swin layers, 2 heads, window 4, mlp 64). The token trunk (head,
    # each layer's attention.proj and mlp.fc2, body_conv) is LayerNorm'd (exact over the kept
    # channels): coupled. qkv (32 -> 96) is
    # viewed as (3, heads, 16): whole heads are the units, 2 units of 3·16 = 48 channels; the
    # reshape itself binds a head's q/k/v thirds (the 3-dim is selected away, the head dim is kept),
    # so each unit has one producer and the q @ kᵀ join adds no new tie: free.
    layers = ["body.0", "body.1"]
    trunk = g("coupled", 32, {"head", "body_conv", *(f"{p}.{m}" for p in layers for m in ("attention.proj", "mlp.fc2"))},
              consumers={"body_conv", "tail.0", *(f"{p}.{m}" for p in layers for m in ("attention.qkv", "mlp.fc1"))})
    heads = [g("free", 2, {f"{p}.attention.qkv"}, unit=48, consumers={f"{p}.attention.proj"}) for p in layers]
    mlps = [g("free", 64, {f"{p}.mlp.fc1"}, consumers={f"{p}.mlp.fc2"}) for p in layers]
    return [trunk, *heads, *mlps, *standard_tail(32)]


def restormer() -> list[G]:
    # C = 8, one block, 2 heads, GDFN hidden 16. The trunk (head, proj, project_out) goes through
    # ChannelLayerNorm (exact over the kept channels): coupled. MDTA: qkv (8 -> 24) and its depthwise qkv_dw share channels; the
    # chunk(3) thirds are reshaped to (heads, 4) and joined head by head only by the contractions
    # q @ kᵀ and attn @ v: 2 coupled units of 12. GDFN: project_in (8 -> 32), depthwise dwconv,
    # gelu(x1) * x2: 16 coupled units of 2.
    p = "body.0"
    return [
        g("coupled", 8, {"head", f"{p}.attention.proj", f"{p}.ffn.project_out"},
          consumers={f"{p}.attention.qkv", f"{p}.ffn.project_in", "tail"}),
        g("coupled", 2, {f"{p}.attention.qkv", f"{p}.attention.qkv_dw"}, unit=12,
          consumers={f"{p}.attention.qkv_dw", f"{p}.attention.proj"}),
        g("coupled", 16, {f"{p}.ffn.project_in", f"{p}.ffn.dwconv"}, unit=2,
          consumers={f"{p}.ffn.dwconv", f"{p}.ffn.project_out"}),
        g("fixed", 3, {"tail"}),
    ]


# case -> (model name, kwargs, expected groups)
CASES: dict[str, tuple[str, dict, list[G]]] = {
    "edsr": ("edsr", dict(blocks=2, channels=16), edsr()),
    "edsr-light": ("edsr", dict(blocks=2, channels=16, upsampler="light"), edsr_light()),
    "rcan": ("rcan", dict(groups=2, blocks=1, channels=8, reduction=4), rcan()),
    "srresnet": ("srresnet", dict(scale=2, blocks=2, channels=8), srresnet()),
    "carn": ("carn", dict(blocks=2, channels=4, units=2), carn()),
    "imdn": ("imdn", dict(blocks=2, channels=8), imdn()),
    "nafnet": ("nafnet", dict(width=8, enc_blocks=(1,), middle_blocks=1, dec_blocks=(1,)), nafnet()),
    "espcn": ("espcn", dict(scale=2, channels=8), espcn()),
    "fsrcnn": ("fsrcnn", dict(scale=2, d=8, s=4, m=2), fsrcnn()),
    "dncnn": ("dncnn", dict(depth=4, channels=8), dncnn()),
    "vdsr": ("vdsr", dict(depth=3, channels=8), vdsr()),
    "unet": ("unet", dict(channels=4, depth=1), unet()),
    # SwinIR's defaults are small already (and its export is the slowest): the case is the default model.
    "swinir": ("swinir", dict(scale=2, channels=32, depth=2, heads=2, window=4, mlp_ratio=2.0), swinir()),
    "restormer": ("restormer", dict(channels=8, blocks=1, heads=2, ffn_expansion=2.0), restormer()),
}


def analyzed(case: str) -> fxprune.ChannelGraph:
    name, kwargs, _ = CASES[case]
    return _analyze(name, _config(name, kwargs))


def _config(name: str, kwargs: dict) -> tuple:
    """The full constructor arguments, so a case spelling out the defaults shares the default's graph."""
    bound = inspect.signature(ZOO[name]).bind(**kwargs)
    bound.apply_defaults()
    return tuple(sorted(bound.arguments.items()))


@functools.lru_cache(maxsize=None)
def _analyze(name: str, config: tuple) -> fxprune.ChannelGraph:
    torch.manual_seed(0)
    return fxprune.analyze(build(name, **dict(config)).eval(), torch.randn(1, 3, 16, 16))


def _group_params(check: str):
    for case, (_, _, groups) in CASES.items():
        for e in groups:
            if check == "consumers" and e.consumers is None:
                continue
            reason = e.xfail_consumers if check == "consumers" else e.xfail
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(case, e, id=f"{case}:{e.label}", marks=marks)


# Models whose groups are not hand-derived here: their slicing is checked against the masked model
# at several batches and sizes in tests/test_window_models.py.
NOT_DERIVED = {"swinir_windows", "uformer", "restormer_unet"}


def test_cases_cover_the_zoo():
    assert {name for name, _, _ in CASES.values()} == set(names()) - NOT_DERIVED


@pytest.mark.parametrize("case", list(CASES))
def test_expectations_name_every_layer(case):
    """A check of the hand derivation itself: every conv/linear of the model is some group's producer."""
    name, kwargs, groups = CASES[case]
    layers = {n for n, m in build(name, **kwargs).named_modules()
              if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))}
    assert set().union(*(e.producers for e in groups)) == layers


@pytest.mark.parametrize("case, e", list(_group_params("group")))
def test_group(case, e):
    """Kind, units, unit size and producers."""
    expect(analyzed(case), e, consumers=False)


@pytest.mark.parametrize("case, e", list(_group_params("consumers")))
def test_group_consumers(case, e):
    assert set(analyzed(case).group_of(e.label).consumers) == e.consumers


@pytest.mark.parametrize("case", list(CASES))
def test_group_count(case):
    graph = analyzed(case)
    expected = CASES[case][2]
    assert len(graph.groups) == len(expected), graph.summary()
    # The expectations describe distinct groups, and every conv/linear output is in exactly one.
    assert len({graph.group_of(e.label).id for e in expected}) == len(expected)
    for group in graph.groups:
        assert len(set(group.producers)) == len(group.producers)
    producers = [p for group in graph.groups for p in group.producers]
    assert len(producers) == len(set(producers)), graph.summary()


@pytest.mark.parametrize("name", zoo_names())
def test_default_model_has_no_diagnostics(name):
    graph = _analyze(name, _config(name, {}))
    assert graph.diagnostics == [], graph.summary()


# --------------------------------------------------------------------------- unknown ops
class CumMax(nn.Module):
    """conv -> running max over channels (an op no coupling rule covers) -> conv."""

    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.last = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(torch.ops.aten.cummax(self.first(x), 1)[0])


def test_op_without_rule_is_fixed_with_a_diagnostic():
    graph = fxprune.analyze(CumMax().eval(), torch.randn(1, 3, 16, 16))
    # Nothing is known about how cummax maps channels, so its output is tied to nothing: the chain
    # is cut, and `last` reads channels of no group.
    expect(graph, g("fixed", 8, {"first"}, consumers=set()))
    assert [(d.node, "cummax" in d.target) for d in graph.diagnostics] == [("cummax", True)]
    assert "no coupling rule" in graph.diagnostics[0].message
    assert "cummax" in graph.diagnostics[0].hint


def test_op_without_rule_raises_in_strict_mode():
    with pytest.raises(fxprune.UnsupportedOpError) as info:
        fxprune.analyze(CumMax().eval(), torch.randn(1, 3, 16, 16), strict=True)
    assert info.value.node == "cummax"
    assert "cummax" in info.value.target
    assert "cummax" in str(info.value)
