"""Facts about an ONNX graph that export, quantize and the benchmark all read."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any


def load_graph(model: Any):
    """An `onnx.ModelProto` from a proto, a `.onnx` path or a folder holding model.onnx (graph
    only: external weights are not read)."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    path = Path(model)
    path = path / "model.onnx" if path.is_dir() else path
    return onnx.load(str(path), load_external_data=False)


def op_counts(model: Any) -> dict[str, int]:
    """{op_type: number of nodes} of the top-level graph, sorted by op type.

    Subgraphs (If/Loop bodies) are not visited: encoder classifiers have none.
    """
    counts = Counter(node.op_type for node in load_graph(model).graph.node)
    return dict(sorted(counts.items()))


def graph_inputs(model: Any) -> list[str]:
    """Names of the graph's real inputs (initializers that old exporters list as inputs left out)."""
    graph = load_graph(model).graph
    initializers = {init.name for init in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers]
