"""A fused CPU GRU layer run on several cores by splitting the batch, not each operation.

A training step of the fused layers (gru_cpu.py, gru_bf16.py) is about 2,000 small operations per date. With
PyTorch's intra-op threads, every one of them is split across the cores and ends in a barrier: the step waits
for its slowest core about 2,000 times, and any other runnable process (the pipeline's own pollers, a second
job) stalls them all. A GRU's rows are independent, so this layer gives each core a contiguous share of the
batch and runs the whole sequence of that share on one thread, with one join per layer and direction. The
weight and bias gradients of the shares are summed in share order, so the result is deterministic for a given
number of shares (it differs from one share in the last bits, as any change of summation order does).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

MIN_ROWS_PER_SHARE = 256  # below this a share's matmuls are too small to pay for their thread


class _ShareContext:
    """What a fused layer's forward and backward use of autograd's ctx, for one share run outside autograd."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *tensors):
        self.saved_tensors = tensors


def share_bounds(batch: int, shares: int) -> list[tuple[int, int]]:
    """Contiguous row ranges, as equal as possible, each of at least MIN_ROWS_PER_SHARE rows (fewer shares when small)."""
    shares = max(1, min(shares, batch // MIN_ROWS_PER_SHARE))
    edges = [batch * i // shares for i in range(shares + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _on_threads(fn, n: int) -> list:
    """[fn(0), ..., fn(n - 1)], each call on a thread of its own with intra-op parallelism off (the share is the
    unit of parallelism) and no autograd recording (grad mode is per thread); the caller's thread count is kept."""
    previous = torch.get_num_threads()

    def run(i):
        torch.set_num_threads(1)
        with torch.no_grad():
            return fn(i)

    try:
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(run, range(n)))
    finally:
        torch.set_num_threads(previous)


class GRULayerSplit(torch.autograd.Function):
    """``kernel`` (GRULayerCPU or GRULayerCPUBF16) over a time-major [T, B, I] batch cut into row shares, one per thread."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, kernel, shares):
        bounds = share_bounds(x.shape[1], shares)
        ctx.kernel, ctx.bounds = kernel, bounds
        ctx.shares = [_ShareContext(ctx.needs_input_grad[:5]) for _ in bounds]

        def forward_share(i):
            lo, hi = bounds[i]
            return kernel.forward(ctx.shares[i], x[:, lo:hi].contiguous(), w_ih, w_hh, b_ih, b_hh)

        return torch.cat(_on_threads(forward_share, len(bounds)), dim=1)

    @staticmethod
    def backward(ctx, d_out):
        def backward_share(i):
            lo, hi = ctx.bounds[i]
            return ctx.kernel.backward(ctx.shares[i], d_out[:, lo:hi].contiguous())

        grads = _on_threads(backward_share, len(ctx.bounds))
        ctx.shares = None  # the shares' saved activations go as soon as their gradients are out
        d_x = torch.cat([g[0] for g in grads], dim=1) if ctx.needs_input_grad[0] else None
        summed = [grads[0][k].clone() for k in range(1, 5)]
        for share in grads[1:]:
            for total, part in zip(summed, share[1:]):
                total.add_(part)
        return (d_x, *summed, None, None)
