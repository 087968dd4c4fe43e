"""Extra task heads in an exported classifier: one ONNX output per task.

optimum's exporter writes a `…ForSequenceClassification` with its one head (output `logits`, the
default task's). A multi-task model (distill.heads) has more output layers on the same input, so
after the export each extra head is added to the graph as a Gemm on the input of the node that
produces `logits`, giving an output `logits_<task>` `[batch_size, labels]`. Written here because
no exporter takes extra heads on a Hugging Face model; one export per task instead would ship the
encoder once per task. Every head is then checked for parity against PyTorch like `logits`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from modelkit.errors import InputError


def head_input(graph) -> str:
    """The tensor the output layer reads: the first input of the Gemm (or MatMul + Add) that
    writes `logits`."""
    producers = {out: node for node in graph.node for out in node.output}
    node = producers.get("logits")
    if node is not None and node.op_type == "Add":
        node = next((producers.get(i) for i in node.input if i in producers), None)
    if node is None or node.op_type not in ("Gemm", "MatMul"):
        raise InputError(
            "export: the graph's `logits` does not come from a Gemm or MatMul (+ Add), so the "
            "extra task heads have no input to attach to; export this model per task instead."
        )
    return node.input[0]


def add_task_heads(
    onnx_path: str | Path, heads: dict[str, tuple[np.ndarray, np.ndarray]]
) -> list[str]:
    """Add `logits_<name>` = input · Wᵀ + b for each (weight [labels, in], bias [labels]);
    rewrites the file in place and returns the graph's output names."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path))
    graph = model.graph
    source = head_input(graph)
    batch = graph.output[0].type.tensor_type.shape.dim[0]
    for name, (weight, bias) in heads.items():
        output = f"logits_{name}"
        w, b = f"heads.{name}.weight", f"heads.{name}.bias"
        graph.initializer.extend(
            [
                numpy_helper.from_array(np.asarray(weight, dtype=np.float32), w),
                numpy_helper.from_array(np.asarray(bias, dtype=np.float32), b),
            ]
        )
        graph.node.append(
            helper.make_node("Gemm", [source, w, b], [output], name=f"/heads/{name}/Gemm", transB=1)
        )
        shape = [batch.dim_param or batch.dim_value or "batch_size", int(len(bias))]
        graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, shape))
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))
    return [o.name for o in graph.output]
