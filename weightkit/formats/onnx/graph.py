"""An ONNX graph as layers: a node and the constant tensors it consumes make one layer.

Constants are initializers, sparse initializers and ``Constant`` nodes, of the
graph or of any enclosing graph. A few operators only re-express a constant
(Identity, Cast, Transpose, Reshape, Squeeze, Unsqueeze, Flatten, DequantizeLinear);
when all their inputs are constant they are folded into the node that consumes
them, so a QDQ ``Conv`` holds its int8 ``weight`` with ``weight_scale`` and
``weight_zero_point``. A ``MatMul`` by a constant followed by an ``Add`` of a
bias-shaped constant is one ``dense`` layer. A constant consumed by several nodes
belongs to the first; the others name it under ``config["shared"]``. Subgraphs
(If, Loop, Scan) become sublayers, one per graph attribute.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import limits
from ...errors import FileFormatError
from ...model import Layer, Tensor
from . import ops
from .source import OnnxSource, onnx_dtype, text

__all__ = ["GraphReader"]

_CHAIN_OPS = frozenset({"Identity", "Cast", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten",
                        "DequantizeLinear"})
_GRAPH, _GRAPHS = 5, 10
_OPERAND_DTYPES = ("int64", "int32")


def _node_config(layer: Layer) -> dict[str, Any]:
    """The config of a layer made from a node (`_node_layer` always gives it one)."""
    if layer.config is None:
        layer.config = {}
    return layer.config


class _Names:
    """Names of a graph, falling back to its enclosing graphs' (a small, fast ChainMap)."""

    __slots__ = ("local", "parent")

    def __init__(self, parent: _Names | None = None):
        self.local: dict[str, Any] = {}
        self.parent = parent

    def __contains__(self, name: str) -> bool:
        scope: _Names | None = self
        while scope is not None:
            if name in scope.local:
                return True
            scope = scope.parent
        return False

    def get(self, name: str, default: Any = None) -> Any:
        scope: _Names | None = self
        while scope is not None:
            if name in scope.local:
                return scope.local[name]
            scope = scope.parent
        return default

    def __getitem__(self, name: str) -> Any:
        value = self.get(name, _MISSING)
        if value is _MISSING:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: Any) -> None:
        self.local[name] = value


_MISSING = object()


@dataclass
class _Scope:
    """Names visible in one graph: constants, constant-only nodes, and which layer produces an edge."""

    constants: _Names = field(default_factory=_Names)
    chains: _Names = field(default_factory=_Names)
    producers: _Names = field(default_factory=_Names)
    owners: _Names = field(default_factory=_Names)

    def child(self) -> _Scope:
        return _Scope(_Names(self.constants), _Names(self.chains), _Names(self.producers), _Names(self.owners))

    def is_constant(self, edge: str) -> bool:
        return edge in self.constants or edge in self.chains


@dataclass
class _Absorbed:
    """What a layer took in while absorbing its constant inputs."""

    flipped: dict[str, bool | None] = field(default_factory=dict)
    folded: list[str] = field(default_factory=list)


class GraphReader:
    """Turns the graphs of one model into layers; remembers every constant it met."""

    def __init__(self, source: OnnxSource, opsets: dict[str, int]):
        self.source = source
        self.opsets = opsets
        self.histogram: Counter[str] = Counter()
        self.constants: list[Tensor] = []
        self._owned: set[int] = set()
        self._absorbed_nodes: set[int] = set()
        self._alive: list[list[Any]] = []
        self._nodes = 0

    def read(self, graph: Any) -> list[Layer]:
        """The layers of the main graph (subgraphs nested inside their nodes' layers)."""
        return self._graph_layers(graph, _Scope())

    def unused(self) -> list[Tensor]:
        """Constants no node consumes (unused initializers, dead Constant nodes)."""
        return [t for t in self.constants if id(t) not in self._owned]

    # -- one graph -----------------------------------------------------------------

    def _graph_layers(self, graph: Any, outer: _Scope) -> list[Layer]:
        scope = outer.child()
        nodes = list(graph.node)
        self._nodes += len(nodes)
        limits.GRAPH_NODES.check(self._nodes, "the ONNX graph (with its subgraphs)", path=self.source.path)
        limits.ENTRIES.check(len(graph.initializer) + len(graph.sparse_initializer),
                             f"the initializers of graph {text(graph.name)!r}", path=self.source.path)
        _check_names(graph, nodes, self.source.path)
        self._alive.append(nodes)  # node identities key the bookkeeping: keep them alive
        self._collect_constants(graph, nodes, scope)
        outputs = {o.name for o in graph.output}
        self._collect_chains(nodes, scope, outputs)
        self._choose_owners(nodes, scope)
        consumers = _consumers(nodes, outputs)
        fused = self._bias_adds(nodes, scope, consumers)
        names = _layer_names(nodes)
        chain_ids = {id(node) for node in scope.chains.local.values()}
        fused_adds = set(fused.values())
        layers: list[tuple[int, Layer]] = []
        for index, node in enumerate(nodes):
            self.histogram[_op_key(node)] += 1
            if _is_constant_node(node) or index in fused_adds or id(node) in chain_ids:
                continue
            layer = self._node_layer(node, names[index], scope)
            if index in fused:
                self._fuse_add(layer, nodes[fused[index]], node, scope)
            layers.append((index, layer))
        for index, node in enumerate(nodes):  # constant-only nodes that nothing consumed stay layers
            if id(node) in chain_ids and id(node) not in self._absorbed_nodes:
                layers.append((index, self._node_layer(node, names[index], scope)))
        return [layer for _, layer in sorted(layers, key=lambda pair: pair[0])]

    def _collect_constants(self, graph: Any, nodes: list[Any], scope: _Scope) -> None:
        local = scope.constants.local
        for init in graph.initializer:
            local.setdefault(init.name, self._remember(self.source.tensor(init, init.name)))
        for sparse in graph.sparse_initializer:
            local.setdefault(sparse.values.name, self._remember(_sparse_tensor(sparse, sparse.values.name)))
        for node in nodes:
            if _is_constant_node(node) and node.output:
                tensor = self._constant_node_tensor(node)
                if tensor is not None:
                    local.setdefault(node.output[0], self._remember(tensor))

    def _remember(self, tensor: Tensor) -> Tensor:
        self.constants.append(tensor)
        return tensor

    def _constant_node_tensor(self, node: Any) -> Tensor | None:
        name = node.output[0]
        for attr in node.attribute:
            if attr.name == "value" and attr.type == 4:
                return self.source.tensor(attr.t, name)
            if attr.name == "sparse_value" and attr.type == 11:
                return _sparse_tensor(attr.sparse_tensor, name)
            value = _plain_constant(attr)
            if value is not None:
                return Tensor.from_array(name, value)
        return None

    def _collect_chains(self, nodes: list[Any], scope: _Scope, outputs: set[str]) -> None:
        """Nodes that only re-express constants (in graph order, so chains of them are found)."""
        local = scope.chains.local
        for node in nodes:
            if node.op_type not in _CHAIN_OPS or not ops.is_default_domain(node.domain) or len(node.output) != 1:
                continue
            inputs = [name for name in node.input if name]
            if inputs and node.output[0] not in outputs and all(
                    name in scope.constants or name in scope.chains for name in inputs):
                local[node.output[0]] = node

    def _choose_owners(self, nodes: list[Any], scope: _Scope) -> None:
        """A constant belongs to the first node using it as a weight (a Conv's W, not a Shape's input)."""
        chain_ids = {id(node) for node in scope.chains.local.values()}
        for node in nodes:
            if id(node) in chain_ids or _is_constant_node(node):
                continue
            if not ops.has_weight_roles(node.op_type, node.domain):
                continue
            names, variadic = ops.input_names(node.op_type, node.domain, self._opset(node.domain))
            for position, edge in enumerate(node.input):
                if edge and edge not in scope.owners and scope.is_constant(edge):
                    role = ops.role_of(node.op_type, node.domain, names, variadic, position)
                    if ops.is_weight_role(node.op_type, node.domain, role):
                        scope.owners.local[edge] = id(node)

    # -- one node ------------------------------------------------------------------

    def _node_layer(self, node: Any, name: str, scope: _Scope) -> Layer:
        config = ops.node_config(node)
        layer = Layer(name, type_name=node.op_type, config=config)
        absorbed = _Absorbed()
        names, variadic = ops.input_names(node.op_type, node.domain, self._opset(node.domain))
        for position, edge in enumerate(node.input):
            if not edge:
                continue
            role = ops.role_of(node.op_type, node.domain, names, variadic, position)
            if scope.is_constant(edge) and scope.owners.get(edge, id(node)) != id(node):
                _node_config(layer).setdefault("shared", {})[role] = edge
            elif scope.is_constant(edge):
                self._absorb(edge, role, layer, scope, absorbed, flipped=False, depth=0)
            elif scope.producers.get(edge) and scope.producers[edge] not in layer.inbound:
                layer.inbound.append(scope.producers[edge])
        self._finish(layer, node, config["attributes"], absorbed)
        for output in node.output:
            scope.producers[output] = name
        for attr in node.attribute:
            graphs = [attr.g] if attr.type == _GRAPH else list(attr.graphs) if attr.type == _GRAPHS else []
            for index, graph in enumerate(graphs):
                label = attr.name if attr.type == _GRAPH else f"{attr.name}_{index}"
                layer.layers.append(self._subgraph_layer(label, graph, scope))
        return layer

    def _subgraph_layer(self, label: str, graph: Any, scope: _Scope) -> Layer:
        config = {"name": graph.name, "inputs": [v.name for v in graph.input],
                  "outputs": [v.name for v in graph.output]}
        return Layer(label, kind="subgraph", type_name="Graph", config=config, layers=self._graph_layers(graph, scope))

    def _absorb(self, edge: str, role: str, layer: Layer, scope: _Scope, absorbed: _Absorbed,
                flipped: bool | None, depth: int) -> None:
        """Attach the constant behind ``edge`` to ``layer`` as ``role``, folding constant-only nodes."""
        if edge in scope.constants:
            self._attach(layer, role, scope.constants[edge])
            absorbed.flipped.setdefault(role, flipped)
            return
        node = scope.chains[edge]
        if id(node) in self._absorbed_nodes or depth > 32:
            _node_config(layer).setdefault("shared", {})[role] = edge
            return
        self._absorbed_nodes.add(id(node))
        absorbed.folded.append(node.name or f"{node.op_type}({edge})")
        alias = self._alias(edge, scope)
        if alias is not None:
            self._attach(layer, role, alias)
            absorbed.flipped.setdefault(role, flipped)
            return
        names, variadic = ops.input_names(node.op_type, node.domain, self._opset(node.domain))
        flipped = _flip(node, flipped)
        for position, inner in enumerate(node.input):
            if not inner:
                continue
            inner_role = (role if position == 0
                          else f"{role}_{_suffix(ops.role_of(node.op_type, '', names, variadic, position))}")
            self._absorb(inner, inner_role, layer, scope, absorbed, flipped if position == 0 else False, depth + 1)

    def _alias(self, edge: str, scope: _Scope) -> Tensor | None:
        """Exporters store equal weights once and name the copies with Identity nodes (bn.bias =
        Identity(conv.bias)): when the stored one already belongs to a layer, the copy is a tensor
        of its own, named after the Identity's output, reading the same bytes."""
        name = edge
        seen = {edge}
        while edge in scope.chains and scope.chains[edge].op_type == "Identity" and scope.chains[edge].input:
            edge = scope.chains[edge].input[0]
            if edge in seen:  # Identity nodes naming each other in a cycle: no stored tensor behind them
                return None
            seen.add(edge)
        stored = scope.constants.get(edge)
        if stored is None or id(stored) not in self._owned or name == edge:
            return None
        alias = Tensor(name, stored.shape, stored.dtype, loader=stored.loader,
                       note=f"same data as {stored.name!r}: the file stores it once")
        self.constants.append(alias)
        return alias

    def _attach(self, layer: Layer, role: str, tensor: Tensor) -> None:
        if _is_operand(layer, role, tensor):  # axes, shapes, indices: part of the op, not a weight
            self._owned.add(id(tensor))
            _node_config(layer).setdefault("constants", {})[role] = _operand_value(tensor)
            return
        if id(tensor) in self._owned:
            _node_config(layer).setdefault("shared", {})[role] = tensor.name
            return
        self._owned.add(id(tensor))
        tensor.role = role
        if role in ("running_mean", "running_var"):
            tensor.trainable = False
        layer.tensors[role if role not in layer.tensors else tensor.name] = tensor

    def _finish(self, layer: Layer, node: Any, attributes: dict[str, Any], absorbed: _Absorbed) -> None:
        """Kind, weight layout and note, once the layer holds its tensors."""
        if node.op_type == "Gather" and ops.is_default_domain(node.domain):
            _rename_roles(layer, "data", "weight", absorbed)
        layer.kind = ops.kind_of(node.op_type, node.domain, layer, attributes)
        if layer.kind == "unknown":
            layer.kind = node.op_type.lower()
        weight = layer.tensors.get("weight")
        if weight is not None and weight.role == "weight":
            weight.layout = ops.layout_of(layer.kind, node.op_type, weight.ndim, attributes,
                                          absorbed.flipped.get("weight", False))
            weight.note = weight.note or ops.weight_note(node.op_type, layer)
        if absorbed.folded:
            _node_config(layer)["folded"] = absorbed.folded

    # -- MatMul + Add ---------------------------------------------------------------

    def _bias_adds(self, nodes: list[Any], scope: _Scope, consumers: dict[str, list[int]]) -> dict[int, int]:
        """MatMul node index → index of the Add that only adds a constant bias to its output."""
        fused: dict[int, int] = {}
        for index, node in enumerate(nodes):
            if node.op_type != "MatMul" or not ops.is_default_domain(node.domain) or len(node.input) != 2:
                continue
            weight = self._source_tensor(node.input[1], scope)
            users = consumers.get(node.output[0], []) if node.output else []
            if weight is None or weight.ndim != 2 or len(users) != 1:
                continue
            add = nodes[users[0]]
            if add.op_type != "Add" or not ops.is_default_domain(add.domain) or len(add.input) != 2:
                continue
            other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
            bias = self._source_tensor(other, scope)
            if bias is not None and bias.size == weight.shape[1] and bias.shape[-1:] == weight.shape[1:]:
                fused[index] = users[0]
        return fused

    def _source_tensor(self, edge: str, scope: _Scope) -> Tensor | None:
        """The stored constant behind an edge, through constant-only nodes' data inputs."""
        seen: set[str] = set()
        while edge not in seen and len(seen) <= 32:
            if edge in scope.constants:
                return scope.constants[edge]
            if edge not in scope.chains or not scope.chains[edge].input:
                return None
            seen.add(edge)
            edge = scope.chains[edge].input[0]
        return None

    def _fuse_add(self, layer: Layer, add: Any, matmul: Any, scope: _Scope) -> None:
        other = add.input[1] if add.input[0] == matmul.output[0] else add.input[0]
        absorbed = _Absorbed()
        self._absorb(other, "bias", layer, scope, absorbed, flipped=False, depth=0)
        _node_config(layer)["folded"] = _node_config(layer).get("folded", []) + absorbed.folded + [add.name or "Add"]
        _node_config(layer)["outputs"] = list(add.output)
        for output in add.output:
            scope.producers[output] = layer.name

    def _opset(self, domain: str) -> int | None:
        return self.opsets.get("ai.onnx" if domain in ops.DEFAULT_DOMAINS else domain)


def _is_operand(layer: Layer, role: str, tensor: Tensor) -> bool:
    """Integer constants given to an ONNX op where it takes no weight (Reshape's shape, ReduceMean's axes)."""
    domain = layer.config.get("domain", "") if layer.config else ""
    return (tensor.dtype in _OPERAND_DTYPES and ops.is_default_domain(domain)
            and not ops.is_weight_role(layer.type_name or "", domain, role.split("_")[0]))


def _operand_value(tensor: Tensor) -> Any:
    """A small operand's values (JSON-ready), or a summary of a big one."""
    if tensor.size <= 16 and tensor.loader is not None:
        return tensor.read().tolist()
    return f"<{tensor.name}: {tensor.dtype}{list(tensor.shape)}>"


def _flip(node: Any, flipped: bool | None) -> bool | None:
    """Track whether a folded chain transposes a 2-D weight (None: it reshapes it past knowing)."""
    if flipped is None:
        return None
    if node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        return not flipped if perm in (None, [1, 0]) else None
    if node.op_type in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
        return None
    return flipped


def _suffix(role: str) -> str:
    """DequantizeLinear's x_scale becomes weight_scale: drop the schema's ``x_``."""
    return role[2:] if role.startswith("x_") else role


def _rename_roles(layer: Layer, old: str, new: str, absorbed: _Absorbed) -> None:
    data = layer.tensors.get(old)
    if data is None or data.ndim != 2 or "weight" in layer.tensors:
        return
    renamed: dict[str, Tensor] = {}
    for key, tensor in layer.tensors.items():
        if key == old or key.startswith(old + "_"):
            key = new + key[len(old):]
            tensor.role = key
        renamed[key] = tensor
    layer.tensors = renamed
    if old in absorbed.flipped:
        absorbed.flipped[new] = absorbed.flipped.pop(old)


def _check_names(graph: Any, nodes: list[Any], path: Any) -> None:
    """Names and op types must be text: protobuf hands back bytes for ones that are not valid UTF-8."""
    names = [init.name for init in graph.initializer] + [s.values.name for s in graph.sparse_initializer]
    for node in nodes:
        names += (node.name, node.op_type, node.domain, *node.input, *node.output, *(a.name for a in node.attribute))
    if any(not isinstance(name, str) for name in names):
        bad = next(name for name in names if not isinstance(name, str))
        raise FileFormatError(f"graph {text(graph.name)!r} has a name that is not valid UTF-8: {bad!r}", path=path,
                              hint="the file is corrupted")


def _consumers(nodes: list[Any], outputs: set[str]) -> dict[str, list[int]]:
    """Edge → indices of the nodes reading it; an edge also read by a graph output or a subgraph gets a -1."""
    users: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            users.setdefault(name, []).append(index)
        for name in _subgraph_reads(node):
            users.setdefault(name, []).append(-1)
    for name in outputs:
        users.setdefault(name, []).append(-1)
    return users


def _subgraph_reads(node: Any) -> set[str]:
    names: set[str] = set()
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == _GRAPH else list(attr.graphs) if attr.type == _GRAPHS else []
        for graph in graphs:
            for inner in graph.node:
                names.update(inner.input)
                names.update(_subgraph_reads(inner))
    return names


def _layer_names(nodes: list[Any]) -> list[str]:
    """Node names, or ``<OpType>_<index>`` for unnamed nodes; made unique within the graph."""
    names: list[str] = []
    seen: set[str] = set()
    for index, node in enumerate(nodes):
        name = node.name or f"{node.op_type}_{index}"
        if name in seen:
            name = f"{name}_{index}"
        seen.add(name)
        names.append(name)
    return names


def _op_key(node: Any) -> str:
    return node.op_type if ops.is_default_domain(node.domain) else f"{node.domain}::{node.op_type}"


def _is_constant_node(node: Any) -> bool:
    return node.op_type == "Constant" and ops.is_default_domain(node.domain)


def _plain_constant(attr: Any) -> np.ndarray | None:
    """The value of a Constant node's value_float(s) / value_int(s) / value_string(s) attribute."""
    if attr.name == "value_float":
        return np.array(attr.f, dtype=np.float32)
    if attr.name == "value_floats":
        return np.array(attr.floats, dtype=np.float32)
    if attr.name == "value_int":
        return np.array(attr.i, dtype=np.int64)
    if attr.name == "value_ints":
        return np.array(attr.ints, dtype=np.int64)
    if attr.name == "value_string":
        return np.array(attr.s, dtype=object)
    if attr.name == "value_strings":
        return np.array(list(attr.strings), dtype=object)
    return None


def _sparse_tensor(sparse: Any, name: str) -> Tensor:
    """A sparse tensor is listed with its dense shape; weightkit does not densify it."""
    values = sparse.values
    return Tensor(name, tuple(int(d) for d in sparse.dims), onnx_dtype(values.data_type),
                  note=f"sparse tensor ({_count(values)} stored values); weightkit does not read sparse data")


def _count(values: Any) -> int:
    return int(np.prod(values.dims)) if len(values.dims) else 0
