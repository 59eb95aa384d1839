"""An interactive page of a model's coupled layers: one self-contained HTML file.

:func:`visualize` draws the data flow of a :class:`~fxprune.graph.ChannelGraph` (convs, linears,
norms, attention and pooling modules, and the ops that couple channels: add, mul, cat, split,
pixel_shuffle, matmul ...) with every layer colored by the group of its output channels, so the
layers that must be pruned together stand out. Free, coupled and fixed groups look different, a
table lists every group, hovering a node names it and its group, clicking highlights the group's
members. Module blocks (``body.3``, a residual group) collapse into one box, and the drawing pans
and zooms, so a 400-layer RCAN stays usable.

How the layout works: Python turns the FX graph into *visible nodes* (a layer module's ops merged
into one node, shape-only and activation ops skipped, the edges bridged over them), nests them in
*blocks* by module name, and lays out every block's items in layers (longest path from the
block's sources, networkx) with rows ordered by the mean row of their predecessors. The page's
script only turns that into coordinates: a block's size depends on which of its sub-blocks are
expanded, so the arithmetic is done when a block is opened or closed. The page's HTML template,
CSS and script are package data files in ``fxprune/page/``; this module fills in the data.

``fxprune graph MODEL -o coupled.html`` writes the page from the command line (:mod:`fxprune.cli`).
"""
from __future__ import annotations

import colorsys
import html
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import networkx as nx
import numpy as np
import torch
import torch.fx as fx

from .graph import ChannelGraph, Group

__all__ = ["visualize", "group_color"]

# Leaf modules of these classes are drawn as one node, even without parameters of their own.
_LAYER_CLASSES = re.compile(
    r"Conv|Linear|Norm|PReLU|Attention|PixelShuffle|PixelUnshuffle|Upsample|Pool|Embedding|Opaque", re.I)
# Ops drawn whenever they are not inside a layer module: they move, merge or contract channels.
_STRUCTURAL_OPS = frozenset("""
    cat concat concatenate stack split split_with_sizes tensor_split chunk unbind pixel_shuffle
    pixel_unshuffle matmul bmm mm addmm baddbmm einsum scaled_dot_product_attention conv1d conv2d
    conv3d conv_transpose1d conv_transpose2d conv_transpose3d convolution linear layer_norm group_norm
    batch_norm instance_norm prelu adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d
    adaptive_max_pool2d avg_pool2d max_pool2d upsample_nearest2d upsample_bilinear2d
    upsample_bicubic2d interpolate grid_sample opaque
""".split())
# Elementwise ops drawn only when they join two or more feature tensors (a residual add, a gate),
# not when they scale one tensor by a constant or a parameter.
_JOINING_OPS = frozenset("add sub mul div rsub maximum minimum where".split())
_HOOK_TYPES = ("_empty_nn_module_stack",)
_DEFAULT_BUDGET = 40  # items shown at first: blocks are opened level by level while the total stays below


# --------------------------------------------------------------------------- colors
def group_color(gid: int, kind: str = "free") -> str:
    """A stable, distinct color for group ``gid`` (grey for a fixed group), as ``#rrggbb``.

    Hues step by the golden angle so neighbouring ids differ strongly; lightness alternates so
    black text stays readable.

    >>> group_color(0), group_color(1), group_color(3, "fixed")
    ('#749ee7', '#ed979d', '#bdbdbd')
    """
    if kind == "fixed":
        return "#bdbdbd"
    hue = ((gid * 137.508 + 218.0) % 360.0) / 360.0
    light = (0.68, 0.76, 0.62)[gid % 3]
    sat = (0.70, 0.62, 0.55)[(gid // 3) % 3]
    r, g, b = colorsys.hls_to_rgb(hue, light, sat)
    return "#{:02x}{:02x}{:02x}".format(round(r * 255), round(g * 255), round(b * 255))


# --------------------------------------------------------------------------- the model's visible nodes
@dataclass
class _VNode:
    name: str  # module path for a layer, FX node name for an op
    type: str  # module class or op name
    kind: str  # "layer", "op", "input", "output"
    module: str  # innermost module path ("" at the root)
    chain: list[str]  # enclosing module paths, outermost first (root excluded, the layer itself excluded)
    fx: list[str] = field(default_factory=list)  # FX nodes drawn by this node
    out: list[int] = field(default_factory=list)  # groups of its output channels, primary first
    inp: list[int] = field(default_factory=list)  # other groups it consumes
    channels: int | None = None
    kept: int | None = None


def _op_name(node: fx.Node) -> str:
    target = node.target
    packet = getattr(target, "overloadpacket", None)
    name = getattr(packet, "__name__", None) or getattr(target, "__name__", None) or str(target)
    return str(name).rsplit(".", 1)[-1].strip("_") or str(name)


def _is_tensor_like(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value)


def _stack(node: fx.Node) -> list[tuple[str, str, str]]:
    """(key, module path, class name) of the node's module stack, root and hooks left out."""
    out = []
    for key, (path, type_name) in (node.meta.get("nn_module_stack") or {}).items():
        cls = str(type_name).rsplit(".", 1)[-1]
        if str(path) and not cls.startswith(_HOOK_TYPES):
            out.append((str(key), str(path), cls))
    return out


def _layer_modules(gm: fx.GraphModule, types: Mapping[str, str]) -> set[str]:
    """Module paths drawn as one node: leaf modules that own parameters or are layer-like."""
    paths = [p for p in types if p]
    # every proper prefix of a path at a dot: the modules with a (recorded) module below them
    ancestors = {q[:i] for q in paths for i, c in enumerate(q) if c == "."}
    owners = {str(n.target).rsplit(".", 1)[0] for n in gm.graph.nodes if n.op == "get_attr" and "." in str(n.target)}
    leaves = {p for p in paths if p not in ancestors}
    return {p for p in leaves
            if not types[p].startswith(_HOOK_TYPES) and (p in owners or _LAYER_CLASSES.search(types[p]))}


def _visible_nodes(graph: ChannelGraph) -> tuple[list[_VNode], dict[str, int], list[tuple[int, int]]]:
    """The nodes worth drawing, which FX node each drawn one covers, and the bridged edges."""
    gm = graph.gm
    types = graph.module_types
    layers = _layer_modules(gm, types)
    vnodes: list[_VNode] = []
    owner: dict[str, int] = {}  # FX node name -> visible node index
    by_call: dict[str, int] = {}  # module-stack key of a layer call -> visible node index
    by_module: dict[str, int] = {}
    params: list[fx.Node] = []
    for n in gm.graph.nodes:
        if n.op == "get_attr":
            params.append(n)
            continue
        if n.op == "placeholder":
            owner[n.name] = len(vnodes)
            vnodes.append(_VNode(n.name, "input", "input", "", [], [n.name]))
            continue
        if n.op == "output":
            owner[n.name] = len(vnodes)
            vnodes.append(_VNode("output", "output", "output", "", [], [n.name]))
            continue
        if n.op == "call_module" and str(n.target).startswith("_guards"):
            continue
        if not _is_tensor_like(n.meta.get("val")):
            continue
        stack = _stack(n)
        op = _op_name(n)
        if stack and stack[-1][1] in layers:
            key, path, cls = stack[-1]
            if key not in by_call:
                by_call[key] = len(vnodes)
                by_module.setdefault(path, len(vnodes))
                vnodes.append(_VNode(path, cls, "layer", path, [p for _, p, _ in stack[:-1]]))
            owner[n.name] = by_call[key]
            vnodes[by_call[key]].fx.append(n.name)
            continue
        joins = sum(1 for a in n.all_input_nodes if a.op != "get_attr" and _is_tensor_like(a.meta.get("val")))
        if n.op == "call_module" or op in _STRUCTURAL_OPS or (op in _JOINING_OPS and joins >= 2):
            owner[n.name] = len(vnodes)
            module = stack[-1][1] if stack else ""
            vnodes.append(_VNode(n.name, str(n.target) if n.op == "call_module" else op, "op", module,
                                 [p for _, p, _ in stack], [n.name]))
    for p in params:  # parameters belong to their layer's node, for group membership
        path = str(p.target).rsplit(".", 1)[0] if "." in str(p.target) else ""
        if path in by_module:
            owner[p.name] = by_module[path]
            vnodes[by_module[path]].fx.append(p.name)

    # Edges between drawn nodes, bridging over the skipped ones; back edges (a module called twice
    # merged into one node) are dropped so the drawing stays acyclic.
    first = {i: None for i in range(len(vnodes))}
    frontier: dict[str, frozenset[int]] = {}
    edges: dict[tuple[int, int], None] = {}
    for pos, n in enumerate(gm.graph.nodes):
        v = owner.get(n.name)
        if v is not None and n.op != "get_attr":
            if first[v] is None:
                first[v] = pos
            frontier[n.name] = frozenset((v,))
            for a in n.all_input_nodes:
                for u in frontier.get(a.name, ()):
                    if u != v:
                        edges[(u, v)] = None
        else:
            frontier[n.name] = frozenset().union(*(frontier.get(a.name, frozenset()) for a in n.all_input_nodes))
    order = {i: (first[i] if first[i] is not None else 10 ** 9) for i in first}
    kept_edges = [(u, v) for (u, v) in edges if order[u] < order[v]]
    return vnodes, owner, kept_edges


def _keep_masks(graph: ChannelGraph, keep: Mapping[int, np.ndarray] | None) -> dict[int, np.ndarray]:
    masks: dict[int, np.ndarray] = {}
    for gid, value in (keep or {}).items():
        if not isinstance(gid, (int, np.integer)) or not 0 <= int(gid) < len(graph.groups):
            raise ValueError(f"keep: no group {gid!r} (the graph has groups 0..{len(graph.groups) - 1})")
        group = graph.groups[int(gid)]
        arr = np.asarray(value)
        if arr.dtype == bool:
            if arr.shape != (group.channels,):
                raise ValueError(f"keep[{gid}]: a bool mask must have one entry per unit ({group.channels}), got shape {arr.shape}")
            masks[int(gid)] = arr
        elif arr.size == 0 or np.issubdtype(arr.dtype, np.integer):
            if arr.size and (arr.min() < 0 or arr.max() >= group.channels):
                raise ValueError(f"keep[{gid}]: unit indices must be in [0, {group.channels})")
            mask = np.zeros(group.channels, dtype=bool)
            mask[arr.astype(int)] = True
            masks[int(gid)] = mask
        else:
            raise ValueError(f"keep[{gid}]: expected a bool mask or integer unit indices, got dtype {arr.dtype}")
    return masks


def _annotate(graph: ChannelGraph, vnodes: list[_VNode], owner: dict[str, int], masks: dict[int, np.ndarray]) -> None:
    """Output/input groups and channel counts of every drawn node."""
    out_members: dict[str, list] = {}  # FX node name -> [(group, member)] of its activation spaces
    param_groups: dict[str, set[int]] = {}
    for g in graph.groups:
        for m in g.members:
            if m.param is None:
                out_members.setdefault(m.node, []).append((g, m))
            else:
                param_groups.setdefault(m.node, set()).add(g.id)
    nodes = {n.name: n for n in graph.gm.graph.nodes}
    for vi, v in enumerate(vnodes):
        acts = [nodes[f] for f in v.fx if nodes[f].op != "get_attr"]
        last = acts[-1] if acts else None
        if last is not None and last.op == "output":
            # the output node: the groups of what it returns
            cand = [(g, m) for a in last.all_input_nodes for g, m in out_members.get(a.name, [])]
        else:
            cand = list(out_members.get(last.name, [])) if last is not None else []
            if last is not None and not cand and isinstance(last.meta.get("val"), (list, tuple)):  # a split: its getitem users
                cand = [(g, m) for u in last.users for g, m in out_members.get(u.name, [])]
        cand.sort(key=lambda gm_: (v.module not in gm_[0].producers, gm_[1].index, gm_[1].dim))
        v.out = list(dict.fromkeys(g.id for g, _ in cand))
        inside = set(v.fx)
        ins: set[int] = set()
        for a in acts:
            for src in a.all_input_nodes:
                if src.name not in inside and src.op != "get_attr":
                    ins.update(g.id for g, _ in out_members.get(src.name, []))
        for f in v.fx:
            ins.update(param_groups.get(f, ()))
        v.inp = sorted(ins - set(v.out))
        if cand:
            g, m = cand[0]
            v.channels = int(m.size)
            if g.id in masks:
                units = np.asarray(graph.unit_index(g, m))
                v.kept = int(np.sum(masks[g.id][units[units >= 0]]) + np.sum(units < 0))
        elif last is not None:
            val = last.meta.get("val")
            if last.op == "output":
                vals = [a.meta.get("val") for a in last.all_input_nodes]
                val = vals[0] if len(vals) == 1 else None
            if isinstance(val, torch.Tensor) and val.dim() >= 1:
                size = val.shape[1] if val.dim() >= 2 else val.shape[-1]
                v.channels = int(size) if isinstance(size, int) else None
            if masks:
                v.kept = v.channels


# --------------------------------------------------------------------------- blocks and their layouts
@dataclass
class _Block:
    path: str
    type: str
    parent: int  # -1 for the root
    items: list[tuple[str, int]] = field(default_factory=list)  # ("n", node) or ("b", block)
    layers: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)  # item -> (layer, row)


def _blocks(vnodes: list[_VNode], edges: list[tuple[int, int]], types: Mapping[str, str]) -> tuple[list[_Block], list[int]]:
    """Nest the drawn nodes in blocks by module path; also every node's innermost block."""
    parent: dict[str, str | None] = {}  # block path -> parent path (None: the root)
    first_leaf: dict[str, int] = {}
    leaf_count: dict[str, int] = {}
    for i, v in enumerate(vnodes):
        up = None
        for p in v.chain:
            parent.setdefault(p, up)
            first_leaf.setdefault(p, i)
            leaf_count[p] = leaf_count.get(p, 0) + 1
            up = p
    home: dict[int, str | None] = {i: (v.chain[-1] if v.chain else None) for i, v in enumerate(vnodes)}
    kids: dict[str | None, list[str]] = {None: []}
    leaves: dict[str | None, list[int]] = {None: []}
    for p, up in parent.items():
        kids.setdefault(p, [])
        leaves.setdefault(p, [])
    for p, up in parent.items():
        kids[up].append(p)
    for i, h in home.items():
        leaves[h].append(i)

    def dissolve(p: str) -> None:  # the block's items move to its parent
        up = parent.pop(p)
        kids[up].remove(p)
        for c in kids.pop(p):
            parent[c] = up
            kids[up].append(c)
        for i in leaves.pop(p):
            home[i] = up
            leaves[up].append(i)

    def depth(p: str) -> int:
        d, q = 0, parent[p]
        while q is not None:
            d, q = d + 1, parent[q]
        return d

    # Blocks with a single item or a single node inside draw nothing useful: dissolve them, deepest first.
    for p in sorted(parent, key=depth, reverse=True):
        if len(kids[p]) + len(leaves[p]) <= 1 or leaf_count[p] <= 1:
            dissolve(p)
    while True:
        blocks = [_Block("", types.get("", "model"), -1)]
        index: dict[str | None, int] = {None: 0}
        for p in sorted(parent, key=lambda q: first_leaf[q]):
            index[p] = len(blocks)
            blocks.append(_Block(p, types.get(p, ""), -1))
        for p, up in parent.items():
            blocks[index[p]].parent = index[up]
        for p in sorted(parent, key=lambda q: first_leaf[q]):
            blocks[index[parent[p]]].items.append(("b", index[p]))
        for i in sorted(home):
            blocks[index[home[i]]].items.append(("n", i))
        for blk in blocks:  # items in data-flow order
            blk.items.sort(key=lambda it: it[1] if it[0] == "n" else first_leaf[blocks[it[1]].path])
        home_idx = [index[home[i]] for i in range(len(vnodes))]
        bad = _layout_blocks(blocks, home_idx, edges)
        if not bad:
            return blocks, home_idx
        for b in bad:  # a block in a cycle of its parent's items (a module called twice): draw its items loose
            dissolve(blocks[b].path)


def _ancestors(blocks: list[_Block], b: int) -> list[int]:
    out = [b]
    while blocks[out[-1]].parent >= 0:
        out.append(blocks[out[-1]].parent)
    return out


def _item_in(blocks: list[_Block], home_idx: list[int], node: int, container: int) -> tuple[str, int] | None:
    """The item of ``container`` that holds ``node`` (the node itself or one of its blocks)."""
    if home_idx[node] == container:
        return ("n", node)
    prev = None
    for b in _ancestors(blocks, home_idx[node]):
        if b == container:
            return ("b", prev) if prev is not None else None
        prev = b
    return None


def _layout_blocks(blocks: list[_Block], home_idx: list[int], edges: list[tuple[int, int]]) -> list[int]:
    """Layer and row of every item within its block; returns blocks that sit in a cycle."""
    item_graphs = {b: nx.DiGraph() for b in range(len(blocks))}
    for b, blk in enumerate(blocks):
        item_graphs[b].add_nodes_from(blk.items)
    for u, v in edges:
        au = _ancestors(blocks, home_idx[u])
        av = set(_ancestors(blocks, home_idx[v]))
        lca = next(b for b in au if b in av)
        iu, iv = _item_in(blocks, home_idx, u, lca), _item_in(blocks, home_idx, v, lca)
        if iu != iv:
            item_graphs[lca].add_edge(iu, iv)
    bad: list[int] = []
    for b, g in item_graphs.items():
        if not nx.is_directed_acyclic_graph(g):
            cyc = nx.find_cycle(g)
            bad += [it[1] for e in cyc for it in e[:2] if it[0] == "b"]
    if bad:
        return sorted(set(bad))
    for b, blk in enumerate(blocks):
        g = item_graphs[b]
        position = {it: k for k, it in enumerate(blk.items)}
        topo = list(nx.lexicographical_topological_sort(g, key=lambda it: position[it]))
        layer: dict[tuple[str, int], int] = {}
        for it in topo:
            layer[it] = max((layer[p] + 1 for p in g.predecessors(it)), default=0)
        for it in reversed(topo):  # a source used only later moves right, next to its first user
            if g.in_degree(it) == 0 and g.out_degree(it) > 0:
                layer[it] = min(layer[s] for s in g.successors(it)) - 1
        rows: dict[tuple[str, int], int] = {}
        for lay in sorted(set(layer.values())):
            members = [it for it in topo if layer[it] == lay]
            bary = {it: np.mean([rows[p] for p in g.predecessors(it) if p in rows] or [position[it] * 1e-6 + 1e3])
                    for it in members}
            for r, it in enumerate(sorted(members, key=lambda it: (bary[it], position[it]))):
                rows[it] = r
        blk.layers = {it: (layer[it], rows[it]) for it in blk.items}
    return []


def _default_expanded(blocks: list[_Block], budget: int = _DEFAULT_BUDGET) -> list[int]:
    """Blocks opened at first: level by level from the root while the items shown stay within budget."""
    expanded = {0}
    shown = len(blocks[0].items)
    frontier = [b for kind, b in blocks[0].items if kind == "b"]
    while frontier:
        extra = sum(len(blocks[b].items) - 1 for b in frontier)
        if shown + extra > budget:
            break
        shown += extra
        expanded.update(frontier)
        frontier = [c for b in frontier for kind, c in blocks[b].items if kind == "b"]
    return sorted(expanded - {0})


# --------------------------------------------------------------------------- the page
def _short(items: tuple[str, ...] | list[str], n: int) -> str:
    names = [p or "<root>" for p in items]
    return ", ".join(names) if len(names) <= n else f"{', '.join(names[:n])}, … (+{len(names) - n} more)"


def _kept_text(group: Group, masks: dict[int, np.ndarray]) -> str:
    total = group.channels * group.unit
    kept = int(masks[group.id].sum()) * group.unit if group.id in masks else total
    return f"{kept}/{total}"


def _table(graph: ChannelGraph, masks: dict[int, np.ndarray], with_keep: bool) -> str:
    head = ["", "group", "kind", "units×unit", "prunable"] + (["kept/total ch"] if with_keep else []) + ["producers", "consumers", "note"]
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for g in graph.groups:
        esc = html.escape
        note = g.fixed_reasons[0] if g.fixed_reasons else ""
        if len(note) > 110:
            note = note[:108] + "…"
        cells = [
            f'<td><span class="sw k-{g.kind}" style="background-color:{group_color(g.id, g.kind)}"></span></td>',
            f"<td>g{g.id}</td>",
            f"<td>{g.kind}</td>",
            f"<td>{g.channels}×{g.unit}</td>",
            f"<td>{g.prunable}</td>",
        ]
        if with_keep:
            cells.append(f"<td>{_kept_text(g, masks)}</td>")
        cells += [
            f'<td title="{esc(_short(g.producers, 10_000))}">{esc(_short(g.producers, 4))}</td>',
            f'<td title="{esc(_short(g.consumers, 10_000))}">{esc(_short(g.consumers, 3))}</td>',
            f'<td class="note" title="{esc(chr(10).join(g.fixed_reasons))}">{esc(note)}</td>',
        ]
        rows.append(f'<tr class="grow" data-g="{g.id}" id="grow{g.id}">' + "".join(cells) + "</tr>")
    return '<table id="groups">' + "\n".join(rows) + "</table>"


def _payload(graph: ChannelGraph, vnodes: list[_VNode], blocks: list[_Block], home_idx: list[int],
             edges: list[tuple[int, int]], masks: dict[int, np.ndarray], with_keep: bool) -> dict:
    lca_edges = []
    for u, v in edges:
        au = _ancestors(blocks, home_idx[u])
        av = set(_ancestors(blocks, home_idx[v]))
        lca_edges.append([u, v, next(b for b in au if b in av)])
    block_groups: list[set[int]] = [set() for _ in blocks]
    block_leaves = [0] * len(blocks)
    for i, v in enumerate(vnodes):
        for b in _ancestors(blocks, home_idx[i]):
            block_groups[b].update(v.out + v.inp)
            block_leaves[b] += 1
    block_out = []
    for b, blk in enumerate(blocks):  # a block's output channels: those of its last-layer item's node
        last = max(blk.items, key=lambda it: (blk.layers[it][0], -blk.layers[it][1]))
        while last[0] == "b":
            inner = blocks[last[1]]
            last = max(inner.items, key=lambda it: (inner.layers[it][0], -inner.layers[it][1]))
        block_out.append(last[1])
    return {
        "keep": with_keep,
        "nodes": [[v.name, v.type, {"layer": "l", "op": "p", "input": "i", "output": "o"}[v.kind], home_idx[i], v.out, v.inp, v.channels, v.kept, v.fx[0] if v.fx else "", v.module]
                  for i, v in enumerate(vnodes)],
        "blocks": [[blk.path, blk.type, blk.parent, [[k, i, *blk.layers[(k, i)]] for k, i in blk.items],
                    block_leaves[b], sorted(block_groups[b]), block_out[b]] for b, blk in enumerate(blocks)],
        "edges": lca_edges,
        "groups": [[g.id, g.kind, g.channels, g.unit, g.prunable, _kept_text(g, masks) if with_keep else None,
                    group_color(g.id, g.kind), list(g.producers[:40]), len(g.producers), list(g.consumers[:40]),
                    len(g.consumers), (g.fixed_reasons[0][:160] if g.fixed_reasons else "")] for g in graph.groups],
        "expanded": _default_expanded(blocks),
    }


def visualize(graph: ChannelGraph, path: str | Path, keep: Mapping[int, np.ndarray] | None = None,
              title: str | None = None) -> Path:
    """Write an interactive HTML page of the graph's coupled layers to ``path``; return the path.

    The page is one file with inline SVG, CSS and JavaScript (no network access). ``keep`` maps a
    group id to a bool mask over its units (or integer unit indices), as passed to
    ``slice_channels``; with it, nodes and the group table show kept/total channels. Raises
    ``ValueError`` on a ``keep`` entry that does not fit its group.

    >>> import tempfile, torch, fxprune
    >>> from fxprune.models import build
    >>> graph = fxprune.analyze(build("edsr", blocks=1, channels=8), torch.randn(1, 3, 16, 16))
    >>> trunk = graph.group_of("head")
    >>> out = visualize(graph, Path(tempfile.mkdtemp()) / "edsr.html", keep={trunk.id: [0, 1, 2, 3]})
    >>> text = out.read_text()
    >>> "<svg" in text and "http://" not in text.replace("http://www.w3.org", "")
    True
    """
    path = Path(path)
    masks = _keep_masks(graph, keep)
    vnodes, owner, edges = _visible_nodes(graph)
    _annotate(graph, vnodes, owner, masks)
    blocks, home_idx = _blocks(vnodes, edges, graph.module_types)
    with_keep = keep is not None
    data = _payload(graph, vnodes, blocks, home_idx, edges, masks, with_keep)
    counts = {k: len(graph.by_kind(k)) for k in ("free", "coupled", "fixed")}
    model = graph.module_types.get("", "model")
    title = title or f"{model}: coupled channel groups"
    summary = (f"{len(graph.groups)} groups: {counts['free']} free, {counts['coupled']} coupled, {counts['fixed']} fixed"
               f" · {len(vnodes)} nodes drawn · {len(graph.diagnostics)} diagnostics")
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    page = (_page_file("page.html").replace("%STYLE%", _page_file("page.css"))
            .replace("%TITLE%", html.escape(title))
            .replace("%SUMMARY%", html.escape(summary))
            .replace("%TABLE%", _table(graph, masks, with_keep))
            .replace("%KEEPLEGEND%", _KEEP_LEGEND if with_keep else "")
            .replace("%DATA%", blob)
            .replace("%SCRIPT%", _page_file("page.js")))
    path.write_text(page, encoding="utf-8")
    return path


def _page_file(name: str) -> str:
    """One of the page's files (``fxprune/page/``: the HTML template, its CSS and its script)."""
    return resources.files("fxprune").joinpath("page", name).read_text(encoding="utf-8")


_KEEP_LEGEND = '<span class="lg"><b>32/64</b> kept/total channels; bar = kept share</span>'
