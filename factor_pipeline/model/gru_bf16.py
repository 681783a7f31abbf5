"""The fused CPU GRU layer of gru_cpu.py with bfloat16 matmuls, for ``model.precision = "bf16"``.

Autocast does not reach inside a custom autograd Function in a useful way (its ``out=`` and in-place
matmuls are never cast), so this layer casts explicitly: the input, the weights and a bfloat16 copy of
each hidden state are the matmul operands, and oneDNN accumulates every product in float32. The state
itself, the gate pre-activations, the gate arithmetic and the bias gradients stay float32, so the
recurrence does not drift in bfloat16's 8-bit mantissa; the matmul outputs are rounded to bfloat16 once,
as with autocast's own matmuls.

The backward pass keeps each step's gate gradients in float32 for the gate arithmetic and one bfloat16
copy of them as the operand of that step's matmuls (hidden, input and weight gradients); the weight and
bias gradients accumulate in float32. The equations are those of ``gru_cpu.GRULayerCPU``.
"""

from __future__ import annotations

import torch

_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
_tanh_backward = torch.ops.aten.tanh_backward.grad_input
LOW = torch.bfloat16


class GRULayerCPUBF16(torch.autograd.Function):
    """One GRU layer, time-major [T, B, I] -> [T, B, H] float32, h0 = 0, bfloat16 matmul operands."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh):
        with torch.autocast("cpu", enabled=False):
            T, B, I = x.shape
            H = w_hh.shape[1]
            # One matmul per step, [x_t | h_t] @ w: the r and z columns sum both projections inside the
            # matmul, the n gate keeps its input and hidden parts apart (r multiplies only the latter).
            w = x.new_zeros(I + H, 4 * H)
            w[:I, : 3 * H] = w_ih.t()
            w[I:, : 2 * H] = w_hh[: 2 * H].t()
            w[I:, 3 * H :] = w_hh[2 * H :].t()
            w = w.to(LOW)
            xh = torch.empty(T + 1, B, I + H, dtype=LOW)  # row t: the step's operand, kept for backward
            xh[:T, :, :I] = x
            xh[0, :, I:].zero_()
            b_rz, b_in, b_hn = b_ih[: 2 * H] + b_hh[: 2 * H], b_ih[2 * H :], b_hh[2 * H :]
            pre = torch.empty(B, 4 * H, dtype=LOW)
            # The matmul's bfloat16 output widened once per step: adding float32 biases to it directly would
            # promote element by element in PyTorch's slow mixed-type path (a third of the forward's time).
            # The sums are the same floats either way.
            pre32 = x.new_empty(B, 4 * H)
            rz = x.new_empty(T, B, 2 * H)
            n = x.new_empty(T, B, H)
            ghn = x.new_empty(T, B, H)
            hs = x.new_empty(T + 1, B, H)
            hs[0].zero_()
            for t in range(T):
                torch.mm(xh[t], w, out=pre)
                pre32.copy_(pre)  # the gate buffers and their arithmetic stay float32
                torch.add(pre32[:, : 2 * H], b_rz, out=rz[t]).sigmoid_()
                torch.add(pre32[:, 3 * H :], b_hn, out=ghn[t])
                torch.add(pre32[:, 2 * H : 3 * H], b_in, out=n[t])
                n[t].addcmul_(rz[t, :, :H], ghn[t]).mul_(2).sigmoid_().mul_(2).sub_(1)  # tanh, as in gru_cpu.py
                torch.lerp(n[t], hs[t], rz[t, :, H:], out=hs[t + 1])
                if t + 1 < T:
                    xh[t + 1, :, I:].copy_(hs[t + 1])
            ctx.save_for_backward(xh, w_ih.to(LOW), w_hh.to(LOW), hs, rz, n, ghn)
            ctx.input_size = I
            return hs[1:]

    @staticmethod
    def backward(ctx, d_out):
        with torch.autocast("cpu", enabled=False):
            xh, w_ih_l, w_hh_l, hs, rz, n, ghn = ctx.saved_tensors
            T, B, H = n.shape
            x_l, hs_l = xh[:, :, : ctx.input_size], xh[:, :, ctx.input_size :]
            # Gate gradients of a step, float32, in the order n | r | z | hn, so that both matmul operands
            # are column ranges of its bfloat16 copy g: n | r | z (input side) and r | z | hn (hidden side).
            d4 = d_out.new_empty(B, 4 * H)
            d_n, d_r, d_z, d_hn = (d4[:, i * H : (i + 1) * H] for i in range(4))
            d_rz = d4[:, H : 3 * H]
            g = torch.empty(B, 4 * H, dtype=LOW)
            ones = torch.ones(1, B, dtype=LOW)
            d_b = d_out.new_zeros(4 * H)
            # Weight gradients accumulate transposed: x_t^T g runs about twice as fast as g^T x_t here (oneDNN
            # reads the long dimension of a transposed gate-gradient slice slowly), with the same sums.
            d_w_nrz_t = d_out.new_zeros(x_l.shape[-1], 3 * H)
            d_w_hh_t = d_out.new_zeros(H, 3 * H)
            w_nrz = torch.cat([w_ih_l[2 * H :], w_ih_l[: 2 * H]])
            d_x = d_out.new_empty(T, B, x_l.shape[-1]) if ctx.needs_input_grad[0] else None
            dh_z = d_out.new_empty(B, H)
            dh_l = torch.empty(B, H, dtype=LOW)
            dh_l32 = d_out.new_empty(B, H)  # widened once, as pre32 in the forward pass
            dh = d_out[T - 1].clone()
            for t in range(T - 1, -1, -1):
                if t < T - 1:
                    dh += d_out[t]
                torch.mul(dh, rz[t, :, H:], out=dh_z)
                _tanh_backward(dh - dh_z, n[t], grad_input=d_n)
                torch.mul(d_n, ghn[t], out=d_r)
                torch.sub(hs[t], n[t], out=d_z).mul_(dh)
                _sigmoid_backward(d_rz, rz[t], grad_input=d_rz)
                torch.mul(d_n, rz[t, :, :H], out=d_hn)
                g.copy_(d4)
                torch.mm(g[:, H:], w_hh_l, out=dh_l)
                torch.add(dh_z, dh_l32.copy_(dh_l), out=dh)
                # Weight and bias gradients accumulate in float32, one step's bfloat16 product at a time;
                # per step, g is still in cache, and these matmuls run faster than one over all steps.
                d_b.add_(torch.mm(ones, g)[0])  # a column sum as a matmul: cheaper than g.sum(0) in float32
                d_w_nrz_t.add_(torch.mm(x_l[t].t(), g[:, : 3 * H]))
                d_w_hh_t.add_(torch.mm(hs_l[t].t(), g[:, H:]))
                if d_x is not None:
                    d_x[t].copy_(torch.mm(g[:, : 3 * H], w_nrz))
            d_b_n, d_b_rz, d_b_hn = d_b[:H], d_b[H : 3 * H], d_b[3 * H :]
            d_w_nrz, d_w_hh = d_w_nrz_t.t(), d_w_hh_t.t().contiguous()
            d_w_ih = torch.cat([d_w_nrz[H:], d_w_nrz[:H]])
            d_b_ih = torch.cat([d_b_rz, d_b_n])
            d_b_hh = torch.cat([d_b_rz, d_b_hn])  # r and z biases enter both sides identically
            return d_x, d_w_ih, d_w_hh, d_b_ih, d_b_hh
