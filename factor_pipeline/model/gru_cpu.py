"""The fused CPU GRU layer: the whole sequence's forward and backward by hand (the cuDNN recipe).

Input projections for all steps in one matmul, one matmul per step for the recurrence, fused gate
arithmetic, weight gradients accumulated in the backward loop. It computes exactly ``nn.GRU``'s function
with ``nn.GRU``'s parameters, so checkpoints are plain ``nn.GRU`` state dicts. On the 2-core dev machine
a full-size training step (5,000 samples) runs at ~70% of the float32 matmul peak on one thread, where
autograd through ``nn.GRU`` reaches 47-61% (its per-step gate concatenations and large temporaries cost
more than the arithmetic). bench/bench_model.py measures it.
"""

from __future__ import annotations

import contextlib
import ctypes

import torch


_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input  # g * s * (1 - s) in one pass, into out


_tanh_backward = torch.ops.aten.tanh_backward.grad_input  # g * (1 - t^2) in one pass, into out


class GRULayerCPU(torch.autograd.Function):
    """One GRU layer over a time-major sequence [T, B, I] -> all hidden states [T, B, H], h0 = 0.

    PyTorch's gate order and equations (r, z, n):
        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
        h' = (1 - z) * n + z * h
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        T, B, _ = x.shape
        H = w_hh.shape[1]
        x2 = x.reshape(T * B, -1)
        # Input projections of every step in two large matmuls, written straight into the buffers
        # that then hold the activations r|z and n. Both r|z biases can be added up front; b_hn
        # cannot, since r multiplies it.
        rz = torch.addmm(b_ih[: 2 * H] + b_hh[: 2 * H], x2, w_ih[: 2 * H].t()).view(T, B, 2 * H)
        n = torch.addmm(b_ih[2 * H :], x2, w_ih[2 * H :].t()).view(T, B, H)
        hs = x.new_empty(T + 1, B, H)  # hs[t] is the state before step t
        hs[0].zero_()
        ghn = x.new_empty(T, B, H)  # W_hn h + b_hn, kept for the backward pass
        w_rz, w_n, b_n = w_hh[: 2 * H].t(), w_hh[2 * H :].t(), b_hh[2 * H :]
        for t in range(T):
            rz[t].addmm_(hs[t], w_rz).sigmoid_()
            torch.addmm(b_n, hs[t], w_n, out=ghn[t])
            # tanh(a) = 2 sigmoid(2a) - 1: PyTorch's CPU sigmoid is about 4x faster than its tanh
            n[t].addcmul_(rz[t, :, :H], ghn[t]).mul_(2).sigmoid_().mul_(2).sub_(1)
            torch.lerp(n[t], hs[t], rz[t, :, H:], out=hs[t + 1])  # n + z * (h - n)
        ctx.save_for_backward(x, w_ih, w_hh, hs, rz, n, ghn)
        return hs[1:]

    @staticmethod
    def backward(ctx, d_out):
        x, w_ih, w_hh, hs, rz, n, ghn = ctx.saved_tensors
        T, B, H = n.shape
        # Weight gradients accumulate transposed (x_t^T d, as in gru_bf16.py): faster here, the same sums.
        d_w_ih_t, d_w_hh_t = w_ih.new_zeros(w_ih.shape[1], 3 * H), w_hh.new_zeros(H, 3 * H)
        d_b_ih, d_b_hh = x.new_zeros(3 * H), x.new_zeros(3 * H)
        d_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        # Per-step buffers, reused so that the whole loop stays in cache and allocates nothing large.
        d_gi = x.new_empty(B, 3 * H)  # grads of the gate pre-activations, input side: r | z | n
        d_ghn = x.new_empty(B, H)  # grad of W_hn h + b_hn (the hidden-side n term is scaled by r)
        dh_z = x.new_empty(B, H)
        dh = d_out[T - 1].clone()
        for t in range(T - 1, -1, -1):
            if t < T - 1:
                dh += d_out[t]
            r, z = rz[t, :, :H], rz[t, :, H:]
            d_rz, d_n = d_gi[:, : 2 * H], d_gi[:, 2 * H :]
            torch.mul(dh, z, out=dh_z)
            _tanh_backward(dh - dh_z, n[t], grad_input=d_n)  # dh * (1 - z) through tanh
            torch.mul(d_n, ghn[t], out=d_gi[:, :H])  # through r * (W_hn h + b_hn)
            torch.sub(hs[t], n[t], out=d_gi[:, H : 2 * H]).mul_(dh)  # dh * (h - n)
            _sigmoid_backward(d_rz, rz[t], grad_input=d_rz)
            torch.mul(d_n, r, out=d_ghn)
            d_w_ih_t.addmm_(x[t].t(), d_gi)
            d_w_hh_t[:, : 2 * H].addmm_(hs[t].t(), d_rz)
            d_w_hh_t[:, 2 * H :].addmm_(hs[t].t(), d_ghn)
            d_b_ih += d_gi.sum(0)
            d_b_hh[2 * H :] += d_ghn.sum(0)
            if d_x is not None:
                torch.mm(d_gi, w_ih, out=d_x[t])
            torch.addmm(dh_z, d_rz, w_hh[: 2 * H], out=dh).addmm_(d_ghn, w_hh[2 * H :])
        d_b_hh[: 2 * H] = d_b_ih[: 2 * H]  # r and z biases enter both sides identically
        return d_x, d_w_ih_t.t().contiguous(), d_w_hh_t.t().contiguous(), d_b_ih, d_b_hh


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters


_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}


@contextlib.contextmanager
def reuse_freed_memory():
    """Inside the block, glibc malloc keeps large freed blocks for reuse instead of unmapping them.

    A full-size CPU training step allocates and frees ~1.5 GB of activations. By default each block
    is a fresh mmap whose pages then fault in one at a time, which costs about a fifth of the step;
    served from the heap, they are reused. On exit malloc's defaults come back and the heap is
    trimmed, so the process does not keep its peak footprint. Best effort: it helps when the thread
    allocates from glibc's main arena (the usual case for the main thread), and is a no-op where
    malloc is not glibc's.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        yield
        return
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield
    finally:
        for param, value in _GLIBC_DEFAULTS.items():
            mallopt(param, value)
        malloc_trim(0)
