"""``ovexport.runtime.ir_macs``: multiply-accumulates counted from an IR at given input shapes."""
from __future__ import annotations

import numpy as np
import pytest
from runtime_fixtures import rt_bundle  # noqa: F401

pytestmark = pytest.mark.integration


def _model():
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter([-1, -1, 8], np.float32, name="x")
    w = ops.constant(np.ones((16, 8), np.float32))
    h = ops.matmul(x, w, False, True)                                   # [B, T, 16]: B*T*8*16
    q = ops.reshape(h, ops.constant(np.array([0, 0, 2, 8], np.int64)), True)
    q = ops.transpose(q, ops.constant(np.array([0, 2, 1, 3], np.int64)))  # [B, 2, T, 8]
    a = ops.scaled_dot_product_attention(q, q, q, causal=False)        # B*2*T*T*(8+8)
    y = ops.matmul(a, ops.constant(np.ones((8, 4), np.float32)), False, False)  # [B, 2, T, 4]: B*2*T*8*4
    return ov.Model([y], [x])


def test_counts_matmuls_and_attention_at_the_given_shapes():
    from ovexport.runtime.ir_macs import matmul_macs

    model = _model()
    for b, t in [(1, 5), (3, 7)]:
        c = matmul_macs(model, {"x": [b, t, 8]})
        assert c.macs == b * t * 8 * 16 + b * 2 * t * t * 16 + b * 2 * t * 8 * 4
        assert (c.products, c.dynamic) == (3, 0)
        assert c.gflop == pytest.approx(2 * c.macs / 1e9)
    assert model.input(0).get_partial_shape().is_dynamic   # the caller's model is not reshaped


def test_dynamic_products_are_reported_apart():
    from ovexport.runtime.ir_macs import matmul_macs

    c = matmul_macs(_model(), {})
    assert (c.macs, c.products, c.dynamic) == (0, 0, 3)


def test_bench_case_costs_count_what_the_runtime_builds(rt_bundle):
    """The compute-floor benchmark's arithmetic on the tiny bundle: the bench cases' encoder calls and prompt
    lengths as the runtime builds them, and vision work that grows with the number of patches."""
    from ovexport.runtime.ir_macs import bench_case_costs

    cases = bench_case_costs(rt_bundle)
    assert cases["448x448"]["encoder_calls"] == [[1, 448, 448]]
    assert cases["1344x896"]["encoder_calls"] == [[1, 364, 546], [6, 448, 448]]
    assert cases["1344x896"]["prompt_tokens"] > cases["448x448"]["prompt_tokens"]
    small, big = cases["448x448"], cases["1344x896"]
    # 7 images of ~1024 patches each vs one of 1024 patches: ~7x the vision work, and more prefill
    assert 6.5 < big["vision_gflop"] / small["vision_gflop"] < 7.5
    assert big["prefill_gflop"] > small["prefill_gflop"] > 0
