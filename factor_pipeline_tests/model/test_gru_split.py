"""The batch-split GRU layer: each thread a share of the rows, the same function and gradients as one thread."""

from __future__ import annotations

import pytest
import torch

from factor_pipeline.model.gru_bf16 import GRULayerCPUBF16
from factor_pipeline.model.gru_cpu import GRULayerCPU
from factor_pipeline.model.gru_split import MIN_ROWS_PER_SHARE, GRULayerSplit, share_bounds


@pytest.mark.parametrize("batch, shares", [(3900, 2), (3900, 3), (1000, 16), (300, 2), (100, 4)])
def test_shares_are_contiguous_cover_the_batch_and_are_never_tiny(batch, shares):
    bounds = share_bounds(batch, shares)
    assert bounds[0][0] == 0 and bounds[-1][1] == batch
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert len(bounds) == 1 or min(hi - lo for lo, hi in bounds) >= MIN_ROWS_PER_SHARE
    assert len(bounds) <= shares and max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1


def _layer_grads(layer, x, weights, shares, upstream):
    x = x.clone().requires_grad_(True)
    weights = [w.clone().requires_grad_(True) for w in weights]
    out = GRULayerSplit.apply(x, *weights, layer, shares) if shares > 1 else layer.apply(x, *weights)
    (out * upstream).sum().backward()
    return out.detach(), x.grad, [w.grad for w in weights]


@pytest.mark.parametrize("layer, tolerance", [(GRULayerCPU, 1e-5), (GRULayerCPUBF16, 2e-2)])
def test_a_split_layer_computes_the_layer_and_its_gradients(layer, tolerance):
    torch.manual_seed(0)
    T, B, I, H = 6, 2 * MIN_ROWS_PER_SHARE + 37, 5, 8
    x = torch.randn(T, B, I)
    weights = [torch.randn(3 * H, I) * 0.3, torch.randn(3 * H, H) * 0.3, torch.randn(3 * H) * 0.1, torch.randn(3 * H) * 0.1]
    upstream = torch.randn(T, B, H)
    threads = torch.get_num_threads()
    whole = _layer_grads(layer, x, weights, 1, upstream)
    split = _layer_grads(layer, x, weights, 2, upstream)
    again = _layer_grads(layer, x, weights, 2, upstream)
    assert torch.get_num_threads() == threads  # the caller's intra-op threads are left as they were
    torch.testing.assert_close(split[0], whole[0], rtol=tolerance, atol=tolerance)  # rows are independent
    torch.testing.assert_close(split[1], whole[1], rtol=tolerance, atol=tolerance)  # d_x, row by row
    for a, b in zip(split[2], whole[2]):
        assert (a - b).norm() <= tolerance * b.norm()  # weight and bias gradients: another summation order
    assert torch.equal(split[1], again[1]) and all(torch.equal(a, b) for a, b in zip(split[2], again[2]))  # deterministic


def test_training_on_two_threads_is_bit_reproducible():
    import dataclasses

    from factor_pipeline.model.gru import train_gru
    from factor_pipeline_tests.model.test_gru import SMOKE, planted_days

    days = planted_days(n_dates=4, n=2 * MIN_ROWS_PER_SHARE + 10, seed=3)
    cfg = dataclasses.replace(SMOKE, max_epochs=2)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first, second = (train_gru(days[:3], days[3:], cfg, 18, seed=4) for _ in range(2))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    assert first.val_ic == second.val_ic
