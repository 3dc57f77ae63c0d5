"""Make an LLM IR stateful with OpenVINO's own transformation: KV cache as state, plus ``beam_idx``."""
from __future__ import annotations

from .spec import StatefulSpec


def fuse_cache_reorder(ov_model, spec: StatefulSpec) -> None:
    """Add a ``beam_idx`` [batch] input that gathers every past-KV input along the batch dimension."""
    import openvino as ov
    from openvino import opset13

    names = {n for p in ov_model.inputs for n in p.get_names()}
    if "beam_idx" in names:
        raise ValueError("the model already has a beam_idx input")
    batch = ov_model.input(spec.main_input).get_partial_shape()[0]
    beam_idx = opset13.parameter(name="beam_idx", dtype=ov.Type.i32, shape=ov.PartialShape([batch]))
    beam_idx.output(0).get_tensor().add_names({"beam_idx"})
    ov_model.add_parameters([beam_idx])
    axis = opset13.constant(spec.batch_dim)
    for name in spec.past_inputs:
        port = ov_model.input(name)
        consumers = port.get_target_inputs()
        gather = opset13.gather(port, beam_idx, axis)
        for consumer in consumers:
            consumer.replace_source_output(gather.output(0))
    ov_model.validate_nodes_and_infer_types()


def init_states_empty(ov_model, spec: StatefulSpec) -> None:
    """Give every ReadValue an initial value: zeros of [batch, heads, 0, head_dim] (an empty cache).

    The batch comes from the main input at run time, the other dimensions from the state's shape
    (dynamic ones, the sequence length, start at 0).
    """
    import numpy as np
    from openvino import opset13

    main = ov_model.input(spec.main_input)
    batch = opset13.gather(opset13.shape_of(main, output_type="i64"), opset13.constant([0]), opset13.constant(0))
    for op in ov_model.get_ops():
        if op.get_type_name() != "ReadValue":
            continue
        dims = []
        for i, dim in enumerate(op.get_output_partial_shape(0)):
            if i == spec.batch_dim:
                dims.append(batch)
            else:
                dims.append(opset13.constant(np.array([dim.get_min_length()], dtype=np.int64)))
        zeros = opset13.broadcast(opset13.constant(0.0, dtype=op.get_output_element_type(0)),
                                  opset13.concat(dims, axis=0))
        op.set_arguments([zeros])
    ov_model.validate_nodes_and_infer_types()


def make_stateful(ov_model, spec: StatefulSpec) -> None:
    """In place: past-KV inputs and present outputs become ReadValue/Assign state pairs."""
    from openvino._offline_transformations import apply_make_stateful_transformation

    fuse_cache_reorder(ov_model, spec)
    apply_make_stateful_transformation(ov_model, dict(zip(spec.past_inputs, spec.present_outputs)))
    init_states_empty(ov_model, spec)
