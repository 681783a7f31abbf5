"""The fused CPU GRU layer computes nn.GRU's function, forward and backward."""

from __future__ import annotations

import pytest
import torch

from factor_pipeline.model.gru import GRUFactorModel


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_fused_cpu_gru_matches_nn_gru():
    """The hand-written CPU forward/backward computes nn.GRU's function and gradients."""
    torch.manual_seed(0)
    model = GRUFactorModel(18, (12, 20), (16,)).double()
    x = torch.randn(9, 6, 18, dtype=torch.double)
    results = []
    for fused in (True, False):
        model.fused_cpu = fused
        model.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = model(xi)
        (out * torch.linspace(-1, 1, 9, dtype=torch.double)).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()], xi.grad.clone()))
    (o1, g1, x1), (o2, g2, x2) = results
    torch.testing.assert_close(o1, o2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x1, x2, rtol=1e-10, atol=1e-12)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


