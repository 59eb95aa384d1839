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
expanded, so the arithmetic is done when a block is opened or closed.

``fxprune graph MODEL -o coupled.html`` writes the page from the command line (:mod:`fxprune.cli`).
"""
from __future__ import annotations

import colorsys
import html
import json
import re
from dataclasses import dataclass, field
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
    inner = {p.rsplit(".", 1)[0] for p in paths if "." in p}
    owners = {str(n.target).rsplit(".", 1)[0] for n in gm.graph.nodes if n.op == "get_attr" and "." in str(n.target)}
    leaves = {p for p in paths if p not in inner and not any(q.startswith(p + ".") for q in paths)}
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
    page = (_PAGE.replace("%TITLE%", html.escape(title))
            .replace("%SUMMARY%", html.escape(summary))
            .replace("%TABLE%", _table(graph, masks, with_keep))
            .replace("%KEEPLEGEND%", _KEEP_LEGEND if with_keep else "")
            .replace("%DATA%", blob)
            .replace("%SCRIPT%", _SCRIPT))
    path.write_text(page, encoding="utf-8")
    return path


_KEEP_LEGEND = '<span class="lg"><b>32/64</b> kept/total channels; bar = kept share</span>'

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%TITLE%</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:13px/1.35 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:10px 16px 4px}
h1{font-size:18px;margin:0 0 2px}
.sub{color:#555}
.bar{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;padding:6px 16px;border-bottom:1px solid #ddd}
.bar button{font:inherit;padding:2px 10px;border:1px solid #aaa;border-radius:4px;background:#fff;cursor:pointer}
.lg{display:inline-flex;align-items:center;gap:5px;color:#333}
.lg svg{vertical-align:middle}
#view{width:100%;height:calc(100vh - 150px);display:block;background:#fff;border-bottom:1px solid #ddd;cursor:grab;user-select:none}
#view.drag{cursor:grabbing}
.nd{cursor:pointer}
.nd text{pointer-events:none}
.t1{font-weight:600;font-size:11.5px}
.t2{font-size:11px;fill:#333}
.ch{font-size:11px;font-weight:700}
.bx>rect.fr{fill:#f4f6f9;stroke:#9aa3ad;stroke-dasharray:4 3}
.bx.d1>rect.fr{fill:#eef1f5}
.bx .hd{cursor:pointer;font-size:11px;font-weight:600;fill:#4a5560}
.cb rect.card{fill:#fff;stroke:#59626b;stroke-width:1.3}
.ed{fill:none;stroke-width:1.6;opacity:.75}
.dim{opacity:.18}
.hl rect.bg,.hl rect.card{stroke:#d40000!important;stroke-width:4!important;stroke-dasharray:none!important}
.hlin rect.bg,.hlin rect.card{stroke:#d40000!important;stroke-width:2.5!important;stroke-dasharray:5 3!important}
#tip{position:fixed;pointer-events:none;background:#fff;border:1px solid #888;border-radius:5px;padding:6px 9px;
 box-shadow:0 2px 8px rgba(0,0,0,.2);max-width:460px;font-size:12px;display:none;z-index:9}
#tip b{font-size:13px}
#tip .gl{margin-top:4px}
main{padding:8px 16px 30px}
h2{font-size:15px;margin:8px 0}
#groups{border-collapse:collapse;font-size:12px}
#groups th,#groups td{border-bottom:1px solid #e2e2e2;padding:3px 8px;text-align:left;vertical-align:top}
#groups th{background:#eee;position:sticky;top:0}
#groups tr.grow{cursor:pointer}
#groups tr.grow:hover{background:#f0f4ff}
#groups tr.sel{background:#ffe9e9}
td.note{color:#666;max-width:380px}
.sw{display:inline-block;width:16px;height:12px;border:1px solid #555;vertical-align:middle}
.sw.k-coupled{border:2px solid #111;background-image:repeating-linear-gradient(45deg,rgba(255,255,255,.55) 0 3px,transparent 3px 6px)}
.sw.k-fixed{border:1px dashed #666;background-image:repeating-linear-gradient(45deg,#888 0 1px,transparent 1px 4px)}
</style></head><body>
<header><h1>%TITLE%</h1><div class="sub">%SUMMARY%</div></header>
<div class="bar">
<button id="fit" type="button">fit</button><button id="openall" type="button">expand all</button><button id="closeall" type="button">collapse all</button>
<span class="lg"><svg width="34" height="18"><rect x="1" y="1" width="32" height="16" rx="3" fill="#83a8e8" stroke="#333"/></svg>free group</span>
<span class="lg"><svg width="34" height="18"><rect x="1.5" y="1.5" width="31" height="15" rx="3" fill="#ebbd6f" stroke="#111" stroke-width="3"/><rect x="1.5" y="1.5" width="31" height="15" fill="url(#stripes)"/><circle cx="27" cy="9" r="5" fill="#111"/><text x="27" y="12" font-size="8" fill="#fff" text-anchor="middle">C</text></svg>coupled (residual-constrained)</span>
<span class="lg"><svg width="34" height="18"><rect x="1" y="1" width="32" height="16" rx="3" fill="url(#hatch)" stroke="#777" stroke-dasharray="3 2"/></svg>fixed (not prunable)</span>
<span class="lg"><svg width="34" height="18"><rect x="1" y="1" width="32" height="16" rx="3" fill="#eee" stroke="#333"/><rect x="1" y="1" width="7" height="16" fill="#9bd48c"/></svg>left band: group it consumes</span>
<span class="lg"><svg width="34" height="18"><rect x="5" y="4" width="28" height="13" fill="#fff" stroke="#59626b"/><rect x="1" y="1" width="28" height="13" fill="#fff" stroke="#59626b"/></svg>collapsed block (click to open)</span>
<span class="lg"><svg width="34" height="18"><rect x="2" y="2" width="30" height="14" rx="3" fill="#fff" stroke="#d40000" stroke-width="3"/></svg>selected group · dashed: consumer</span>
%KEEPLEGEND%
<span class="lg" style="color:#666">drag to pan · wheel to zoom · click a node or a table row</span>
</div>
<svg id="view" xmlns="http://www.w3.org/2000/svg"><defs>
<pattern id="stripes" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="2.5" height="8" fill="rgba(255,255,255,.45)"/></pattern>
<pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="#e4e4e4"/><rect width="1.6" height="6" fill="#a6a6a6"/></pattern>
<marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto"><path d="M0,0L10,5L0,10z" fill="#666"/></marker>
</defs><g id="scene"></g></svg>
<div id="tip"></div>
<main><h2>Groups</h2>%TABLE%</main>
<script type="application/json" id="data">%DATA%</script>
<script>%SCRIPT%</script>
</body></html>
"""

_SCRIPT = r"""
(function(){
"use strict";
var D=JSON.parse(document.getElementById('data').textContent);
var N=D.nodes,B=D.blocks,E=D.edges,G={};D.groups.forEach(function(g){G[g[0]]=g;});
var OPN={split_with_sizes:'split',tensor_split:'split',adaptive_avg_pool2d:'avgpool',adaptive_max_pool2d:'maxpool',avg_pool2d:'avgpool',max_pool2d:'maxpool',scaled_dot_product_attention:'attention',pixel_shuffle:'pixshuffle',pixel_unshuffle:'pixunshuffle',upsample_nearest2d:'upsample',upsample_bilinear2d:'upsample',upsample_bicubic2d:'upsample'};
var NW=134,OW=86,IOW=96,NH=44,BW=170,BH=56,GX=34,GY=16,PAD=10,HEAD=18;
var open={};D.expanded.forEach(function(b){open[b]=1;});open[0]=1;
var svg=document.getElementById('view'),scene=document.getElementById('scene'),tip=document.getElementById('tip');
var sel=null,L=null;
function esc(s){return String(s).replace(/[&<>"]/g,function(c){return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c];});}
function cut(s,n){s=String(s);if(s.length<=n)return s;var p=s.split('.');while(p.length>1&&p.join('.').length>n-1)p.shift();
  s=p.join('.');return '\u2026'+(s.length<=n-1?s:s.slice(s.length-n+1));}
function col(g){return g==null||!G[g]?'#ffffff':G[g][6];}
function kind(g){return g==null||!G[g]?'none':G[g][1];}
// the block that is drawn for node/block x (its outermost closed ancestor, or itself)
function parentOf(it){return it[0]==='n'?N[it[1]][3]:B[it[1]][2];}
function rep(n){var r=['n',n],b=N[n][3];while(b>0){if(!open[b])r=['b',b];b=B[b][2];}return r;}
function info(it){var b=B[parentOf(it)];for(var k=0;k<b[3].length;k++){var x=b[3][k];if(x[0]===it[0]&&x[1]===it[1])return x;}}
function nLayers(b){var m=0;B[b][3].forEach(function(x){if(x[2]+1>m)m=x[2]+1;});return m;}
function arcH(span){return 12+8*Math.min(span,7);}
// is the edge drawn straight (nothing in between) or as an arc over its lowest common block?
function classify(e,ru,rv){
  var lca=e[2],a=ru,b=rv,ok=true,ia,ib;
  while(parentOf(a)!==lca){var x=info(a);if(x[2]!==nLayers(parentOf(a))-1)ok=false;a=['b',parentOf(a)];}
  while(parentOf(b)!==lca){var y=info(b);if(y[2]!==0)ok=false;b=['b',parentOf(b)];}
  ia=info(a);ib=info(b);var span=ib[2]-ia[2];
  return {direct:ok&&span===1,span:Math.max(span,1),lca:lca};
}
function layout(){
  var drawn={},links=[],room={};
  E.forEach(function(e){
    var ru=rep(e[0]),rv=rep(e[1]);var k=ru.join()+'>'+rv.join();
    if(ru[0]===rv[0]&&ru[1]===rv[1]||drawn[k])return;drawn[k]=1;
    var c=classify(e,ru,rv);c.u=ru;c.v=rv;c.g=N[e[0]][4][0];links.push(c);
    if(!c.direct)room[c.lca]=Math.max(room[c.lca]||0,arcH(c.span)+6);
  });
  var size={},pos={},frames=[];
  function measure(it){
    var key=it.join();if(size[key])return size[key];var s;
    if(it[0]==='n')s={w:nodeW(it[1]),h:NH,py:NH/2};
    else if(!open[it[1]])s={w:BW,h:BH,py:BH/2};
    else{
      var b=it[1],items=B[b][3],cols=[],colW=[],base=0;
      items.forEach(function(x){var m=measure([x[0],x[1]]);(cols[x[2]]=cols[x[2]]||[]).push(x);colW[x[2]]=Math.max(colW[x[2]]||0,m.w);
        if(x[3]===0)base=Math.max(base,m.py);});
      var top=(b>0?HEAD:0)+PAD+(room[b]||0),W=PAD,H=0,place=[];
      for(var l=0;l<colW.length;l++){
        if(!cols[l]){continue;}
        cols[l].sort(function(p,q){return p[3]-q[3];});
        var y=null;
        cols[l].forEach(function(x){var m=measure([x[0],x[1]]);var yy=(y===null)?top+base-m.py:y;
          place.push([x,W+(colW[l]-m.w)/2,yy]);y=yy+m.h+GY;H=Math.max(H,yy+m.h);});
        W+=colW[l]+GX;
      }
      W=W-GX+PAD;H+=PAD;W=Math.max(W,b>0?String(B[b][0]).length*6.5+60:0);
      s={w:W,h:H,py:top+base,place:place,top:top};
    }
    size[key]=s;return s;
  }
  function put(it,x,y,depth){
    var s=measure(it);pos[it.join()]={x:x,y:y,w:s.w,h:s.h,py:s.py};
    if(it[0]==='b'&&open[it[1]]){
      frames.push({b:it[1],x:x,y:y,w:s.w,h:s.h,d:depth,top:y+s.top});
      s.place.forEach(function(p){put([p[0][0],p[0][1]],x+p[1],y+p[2],depth+1);});
    }
  }
  put(['b',0],0,0,0);
  var root=measure(['b',0]);
  return {pos:pos,frames:frames,links:links,W:root.w,H:root.h};
}
function nodeW(i){var k=N[i][2];return k==='l'?NW:(k==='p'?OW:IOW);}
function nodeSvg(i,p){
  var n=N[i],g=n[4][0],k=kind(g),c=col(g),s='',cls='nd k-'+k;
  var io=n[2]==='i'||n[2]==='o',rx=io?p.h/2:(n[2]==='p'?p.h/2.6:5);
  s+='<g class="'+cls+'" data-n="'+i+'" data-o="'+n[4].join(' ')+'" data-g="'+n[4].concat(n[5]).join(' ')+'" transform="translate('+p.x+','+p.y+')">';
  var fill=k==='fixed'?'url(#hatch)':(k==='none'?'#fff':c),stroke=k==='coupled'?'#111':(k==='fixed'?'#777':'#444');
  var sw=k==='coupled'?2.6:1.1,dash=k==='fixed'?' stroke-dasharray="5 3"':'';
  s+='<rect class="bg" width="'+p.w+'" height="'+p.h+'" rx="'+rx+'" fill="'+fill+'" stroke="'+stroke+'" stroke-width="'+sw+'"'+dash+'/>';
  if(k==='coupled')s+='<rect width="'+p.w+'" height="'+p.h+'" rx="'+rx+'" fill="url(#stripes)" pointer-events="none"/>'
    +'<circle cx="'+(p.w-9)+'" cy="10" r="6" fill="#111"/><text x="'+(p.w-9)+'" y="13.2" font-size="8.5" font-weight="700" fill="#fff" text-anchor="middle">C</text>';
  var ig=n[5].length?n[5][0]:null,x0=io?14:(n[2]==='p'?10:13);
  if(ig!==null&&!io)s+='<rect x="1" y="'+(n[2]==='p'?8:1)+'" width="7" height="'+(n[2]==='p'?p.h-16:p.h-2)+'" fill="'+(kind(ig)==='fixed'?'#9e9e9e':col(ig))+'" stroke="#444" stroke-width=".6"/>';
  var label,t2;
  if(n[2]==='l'){label=cut(n[0],k==='coupled'?17:19);t2=n[1];}
  else if(n[2]==='p'){label=cut(OPN[n[1]]||n[1],k==='coupled'?9:11);t2='';}
  else if(n[2]==='i'){label='input';t2=n[0];}
  else {label='output';t2='';}
  s+='<text class="t1" x="'+x0+'" y="17">'+esc(label)+'</text>';
  if(t2)s+='<text class="t2" x="'+x0+'" y="34">'+esc(cut(t2,12))+'</text>';
  var ch=n[6]==null?'':(D.keep&&n[7]!=null?n[7]+'/'+n[6]:String(n[6]));
  var gl=(g==null?'':'g'+g)+(ch&&g!=null?' \u00B7 ':'')+ch;
  s+='<text class="ch" x="'+(p.w-7)+'" y="34" text-anchor="end">'+esc(gl)+'</text>';
  if(D.keep&&n[7]!=null&&n[6]){var f=n[7]/n[6],bw=p.w-x0-10;s+='<rect x="'+x0+'" y="'+(p.h-7)+'" width="'+(bw*f)+'" height="3" fill="#222"/><rect x="'+(x0+bw*f)+'" y="'+(p.h-7)+'" width="'+(bw*(1-f))+'" height="3" fill="#fff" stroke="#222" stroke-width=".5"/>';}
  return s+'</g>';
}
function blockSvg(b,p){
  var bl=B[b],s='<g class="nd cb" data-b="'+b+'" data-g="'+bl[5].join(' ')+'" transform="translate('+p.x+','+p.y+')">';
  s+='<rect class="card" x="6" y="6" width="'+(p.w-6)+'" height="'+(p.h-6)+'" rx="5"/>';
  s+='<rect class="card" width="'+(p.w-6)+'" height="'+(p.h-6)+'" rx="5"/>';
  s+='<text class="t1" x="10" y="16">\u25B8 '+esc(cut(bl[0],23))+'</text>';
  s+='<text class="t2" x="10" y="30">'+esc(cut(bl[1],16))+' \u00B7 '+bl[4]+' nodes</text>';
  var gs=bl[5],nchip=Math.min(gs.length,7);
  for(var k=0;k<nchip;k++){var g=gs[k];s+='<rect x="'+(10+k*12)+'" y="36" width="10" height="10" fill="'+(kind(g)==='fixed'?'url(#hatch)':col(g))+'" stroke="'+(kind(g)==='coupled'?'#111':'#666')+'" stroke-width="'+(kind(g)==='coupled'?2:.6)+'"/>';}
  if(gs.length>7)s+='<text class="t2" x="'+(12+12*7)+'" y="45">+'+(gs.length-7)+'</text>';
  var o=N[bl[6]],ch=o[6]==null?'':(D.keep&&o[7]!=null?o[7]+'/'+o[6]:o[6]);
  s+='<text class="ch" x="'+(p.w-12)+'" y="45" text-anchor="end">'+esc(ch)+'</text>';
  return s+'</g>';
}
function edgeSvg(c){
  var a=L.pos[c.u.join()],b=L.pos[c.v.join()];if(!a||!b)return '';
  var sx=a.x+a.w-(c.u[0]==='b'?6:0),sy=a.y+a.py,tx=b.x,ty=b.y+b.py,d,cl=c.g==null?'#888':(kind(c.g)==='fixed'?'#888':col(c.g));
  if(kind(c.g)!=='fixed'&&c.g!=null)cl=shade(cl);
  if(c.direct||tx-sx<80){var mx=(sx+tx)/2;d='M'+sx+','+sy+'C'+mx+','+sy+' '+mx+','+ty+' '+tx+','+ty;}
  else{var f=L.frame[c.lca],yt=(f?f.top:0)-arcH(c.span);
    d='M'+sx+','+sy+'C'+(sx+28)+','+sy+' '+(sx+6)+','+yt+' '+(sx+40)+','+yt+'L'+(tx-40)+','+yt+'C'+(tx-6)+','+yt+' '+(tx-28)+','+ty+' '+tx+','+ty;}
  return '<path class="ed" d="'+d+'" stroke="'+cl+'" marker-end="url(#arr)"/>';
}
function shade(h){var r=parseInt(h.substr(1,2),16),g=parseInt(h.substr(3,2),16),b=parseInt(h.substr(5,2),16);
  return 'rgb('+Math.round(r*.7)+','+Math.round(g*.7)+','+Math.round(b*.7)+')';}
function render(){
  L=layout();L.frame={};
  var out=[];
  L.frames.forEach(function(f){L.frame[f.b]=f;if(f.b===0)return;
    out.push('<g class="bx d'+(f.d%2)+'" data-fb="'+f.b+'"><rect class="fr" x="'+f.x+'" y="'+f.y+'" width="'+f.w+'" height="'+f.h+'" rx="8"/>'
      +'<text class="hd" data-hb="'+f.b+'" x="'+(f.x+8)+'" y="'+(f.y+14)+'">\u25BE '+esc(B[f.b][0])+'  ('+esc(B[f.b][1])+')</text></g>');});
  L.links.forEach(function(c){out.push(edgeSvg(c));});
  Object.keys(L.pos).forEach(function(k){var p=L.pos[k],it=k.split(',');var i=+it[1];
    if(it[0]==='n')out.push(nodeSvg(i,p));else if(!open[i])out.push(blockSvg(i,p));});
  scene.innerHTML=out.join('');
  applySel();
}
// ---- selection
function membersOf(g){var out={},inn={},blk={};
  N.forEach(function(n,i){var o=n[4].indexOf(g)>=0,c=n[5].indexOf(g)>=0;if(o)out[i]=1;else if(c)inn[i]=1;
    if(o||c){var b=n[3];while(b>0){blk[b]=1;b=B[b][2];}}});return {out:out,inn:inn,blk:blk};}
function applySel(){
  var els=scene.querySelectorAll('.nd'),m=sel===null?null:membersOf(sel);
  for(var k=0;k<els.length;k++){var e=els[k];e.classList.remove('hl','hlin','dim');if(!m)continue;
    var n=e.getAttribute('data-n'),b=e.getAttribute('data-b');
    if(n!==null){if(m.out[n])e.classList.add('hl');else if(m.inn[n])e.classList.add('hlin');else e.classList.add('dim');}
    else if(b!==null){if(m.blk[b])e.classList.add('hl');else e.classList.add('dim');}}
  var eds=scene.querySelectorAll('.ed');for(k=0;k<eds.length;k++)eds[k].classList.toggle('dim',!!m);
  var rows=document.querySelectorAll('#groups tr.sel');for(k=0;k<rows.length;k++)rows[k].classList.remove('sel');
  if(sel!==null){var r=document.getElementById('grow'+sel);if(r)r.classList.add('sel');}
}
function select(g){sel=(g===undefined||g===null||sel===g)?null:g;applySel();}
window.fxSelect=function(g){sel=null;select(g);};
// ---- tooltip
function names(list,total,n){var s=list.slice(0,n).map(function(x){return x||'<root>';}).join(', ');
  if(total>n)s+=', \u2026 (+'+(total-n)+' more)';return s;}
function groupLine(g,role){var x=G[g];if(!x)return '';
  var s='<div class="gl"><span class="sw k-'+x[1]+'" style="background-color:'+x[6]+'"></span> <b>g'+g+'</b> '+role+' \u00B7 '+x[1]+' \u00B7 '+x[2]+'\u00D7'+x[3]+' ch'+(x[5]?' \u00B7 kept '+x[5]:'');
  s+='<br>producers: '+esc(names(x[7],x[8],8))+'<br>consumers: '+esc(names(x[9],x[10],6));
  if(x[11])s+='<br><i>fixed: '+esc(x[11])+'</i>';return s+'</div>';}
function tipFor(e){
  var n=e.getAttribute('data-n'),b=e.getAttribute('data-b'),s;
  if(n!==null){n=N[+n];s='<b>'+esc(n[2]==='l'?n[0]:n[8])+'</b> \u2014 '+esc(n[1])+(n[9]&&n[2]!=='l'?' in '+esc(n[9]):'')
    +(n[6]!=null?' \u00B7 '+(D.keep&&n[7]!=null?n[7]+'/':'')+n[6]+' ch':'');
    if(n[2]==='l'&&n[8])s+='<br><span style="color:#666">FX node '+esc(n[8])+'</span>';
    n[4].forEach(function(g,k){s+=groupLine(g,k?'(output, other dim)':'output');});
    n[5].forEach(function(g){s+=groupLine(g,'input');});
    if(!n[4].length&&!n[5].length)s+='<div class="gl">in no group (its channels are not prunable)</div>';}
  else{b=B[+b];s='<b>'+esc(b[0])+'</b> \u2014 '+esc(b[1])+' \u00B7 '+b[4]+' nodes, '+b[5].length+' groups<br>click to expand';}
  return s;}
// ---- pan / zoom on the viewBox
var vb=null,drag=null,moved=false;
function setVB(){svg.setAttribute('viewBox',vb.x+' '+vb.y+' '+vb.w+' '+vb.h);}
function relayout(){render();svg.style.height='';var r=svg.getBoundingClientRect();vb.h=r.height*vb.w/r.width;setVB();}
function fit(all){svg.style.height='';var r=svg.getBoundingClientRect(),W=L.W+40,H=L.H+40,s=Math.min(r.width/W,r.height/H,1.3);
  if(!all&&s<0.55){s=Math.max(0.55,Math.min(0.8,r.height/H));}
  var h=Math.max(260,Math.min(r.height,H*s+10));if(h<r.height){svg.style.height=h+'px';r=svg.getBoundingClientRect();}
  vb={x:-20,y:-20,w:r.width/s,h:r.height/s};if(s*W<r.width){vb.x=-20-(r.width/s-W)/2;}setVB();}
svg.addEventListener('wheel',function(ev){ev.preventDefault();var r=svg.getBoundingClientRect();
  var f=Math.exp(ev.deltaY*0.0015),mx=vb.x+(ev.clientX-r.left)/r.width*vb.w,my=vb.y+(ev.clientY-r.top)/r.height*vb.h;
  vb.w*=f;vb.h*=f;vb.x=mx-(ev.clientX-r.left)/r.width*vb.w;vb.y=my-(ev.clientY-r.top)/r.height*vb.h;setVB();},{passive:false});
svg.addEventListener('mousedown',function(ev){drag={x:ev.clientX,y:ev.clientY,vx:vb.x,vy:vb.y};moved=false;});
window.addEventListener('mousemove',function(ev){
  if(drag){var r=svg.getBoundingClientRect(),dx=ev.clientX-drag.x,dy=ev.clientY-drag.y;
    if(Math.abs(dx)+Math.abs(dy)>3){moved=true;svg.classList.add('drag');}
    vb.x=drag.vx-dx*vb.w/r.width;vb.y=drag.vy-dy*vb.h/r.height;setVB();}
});
window.addEventListener('mouseup',function(){drag=null;svg.classList.remove('drag');});
scene.addEventListener('mouseover',function(ev){var e=ev.target.closest('.nd');if(!e)return;tip.innerHTML=tipFor(e);tip.style.display='block';});
scene.addEventListener('mousemove',function(ev){if(tip.style.display==='block'){
  var x=ev.clientX+14,y=ev.clientY+14;if(x+tip.offsetWidth>innerWidth)x=ev.clientX-tip.offsetWidth-10;
  if(y+tip.offsetHeight>innerHeight)y=ev.clientY-tip.offsetHeight-10;tip.style.left=x+'px';tip.style.top=y+'px';}});
scene.addEventListener('mouseout',function(ev){var e=ev.target.closest('.nd');if(e&&!e.contains(ev.relatedTarget))tip.style.display='none';});
function expand(b){open[b]=1;var shown=0,front=B[b][3].filter(function(x){return x[0]==='b';}).map(function(x){return x[1];});
  shown=B[b][3].length;while(front.length){var extra=0;front.forEach(function(c){extra+=B[c][3].length-1;});
    if(shown+extra>30)break;shown+=extra;front.forEach(function(c){open[c]=1;});
    front=[].concat.apply([],front.map(function(c){return B[c][3].filter(function(x){return x[0]==='b';}).map(function(x){return x[1];});}));}}
svg.addEventListener('click',function(ev){if(moved)return;
  var h=ev.target.closest('.hd');if(h){var hb=+h.getAttribute('data-hb');
    (function close(b){delete open[b];B[b][3].forEach(function(x){if(x[0]==='b')close(x[1]);});})(hb);relayout();return;}
  var e=ev.target.closest('.nd');if(!e){select(null);return;}
  var b=e.getAttribute('data-b');if(b!==null){tip.style.display='none';expand(+b);relayout();return;}
  var n=N[+e.getAttribute('data-n')];select(n[4].length?n[4][0]:(n[5].length?n[5][0]:null));});
document.getElementById('groups').addEventListener('click',function(ev){var r=ev.target.closest('tr.grow');if(r)select(+r.getAttribute('data-g'));});
document.getElementById('fit').onclick=function(){fit(true);};
document.getElementById('openall').onclick=function(){B.forEach(function(b,i){open[i]=1;});render();fit(false);};
document.getElementById('closeall').onclick=function(){open={0:1};render();fit(true);};
var t0=performance.now();render();fit(false);
document.body.setAttribute('data-render-ms',String(Math.round(performance.now()-t0)));
document.body.setAttribute('data-rendered',String(scene.querySelectorAll('.nd').length));
})();
"""
