"""A cheaper, exact double backward for convolutions, BatchNorm and activations.

Differentiating Grad-CAM evidence while training differentiates ``G = ds/dA``, i.e. the
backward pass of every layer after ``A``. PyTorch's double backward of a convolution
computes its weight gradient as a convolution with batch and channels swapped, slower
than the weight-gradient kernel of an ordinary backward pass; that of training-mode
BatchNorm runs some thirty elementwise passes where a closed form needs a dozen. Inside
:func:`fast_double_backward` these layers build their backward pass from custom
functions whose own backward uses the ordinary kernels and the closed form; gradients
are the same. The activations' double backward leaves out PyTorch's zero-filled
gradient of the ReLU's output (and the pass that adds it) and the ELUs' longer formula.
Their backward passes skip the weight gradients the pass does not use
(the evidence's ``ds/dA`` needs none), asking autograd's engine which gradients it will
use.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["fast_double_backward"]


def _used(ctx, index: int) -> bool:
    """Whether the running backward pass uses the gradient of forward input ``index``.

    ``ctx.needs_input_grad`` only says that the input requires a gradient. The engine
    knows which of those a pass reaches: ``torch.autograd.grad(score, activations)``
    reaches no weight, ``loss.backward()`` every one. It answers from the pass's own
    state, also on the device thread where a GPU's backward runs (a thread-local
    flag set by the caller is not seen there).
    """
    if not ctx.needs_input_grad[index]:
        return False
    node = ctx.next_functions[index][0]
    if node is None:
        return False
    try:
        return torch._C._will_engine_execute_node(node)
    except RuntimeError:
        # torch.autograd.grad asked for this very leaf: compute it.
        return True


def _conv_backward(grad_out, x, weight, conv, output_mask):
    stride, padding, dilation, groups = conv
    return torch.ops.aten.convolution_backward(
        grad_out, x, weight, None, stride, padding, dilation, False, [0] * len(stride),
        groups, output_mask,
    )


class _ConvInputGrad(torch.autograd.Function):
    """``dx`` of a convolution as a function of ``(grad_out, weight)``."""

    @staticmethod
    def forward(ctx, grad_out, x, weight, conv):
        ctx.save_for_backward(grad_out, x, weight)
        ctx.conv = conv
        return _conv_backward(grad_out, x, weight, conv, [True, False, False])[0]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_grad_x):
        grad_out, x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        need_grad_out, _, need_weight, _ = ctx.needs_input_grad
        grad_grad_out = grad_weight = None
        if need_grad_out:
            grad_grad_out = torch.nn.functional.conv2d(
                grad_grad_x, weight, None, stride, padding, dilation, groups
            )
        if need_weight:
            # <ggx, conv^T(gy, W)> = <conv(ggx, W), gy>: a weight gradient with input ggx.
            grad_weight = _conv_backward(
                grad_out, grad_grad_x, weight, ctx.conv, [False, True, False]
            )[1]
        return grad_grad_out, None, grad_weight, None


class _Conv2dFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, conv):
        ctx.save_for_backward(x, weight)
        ctx.conv = conv
        ctx.has_bias = bias is not None
        stride, padding, dilation, groups = conv
        return torch.nn.functional.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_weight, need_bias = (_used(ctx, i) for i in range(3))
        grad_x = grad_weight = grad_bias = None
        if not torch.is_grad_enabled():
            grad_x, grad_weight, grad_bias = _conv_backward(
                grad_out, x, weight, ctx.conv, [need_x, need_weight, need_bias and ctx.has_bias]
            )
            return grad_x, grad_weight, grad_bias, None
        if need_x:
            grad_x = _ConvInputGrad.apply(grad_out, x.detach(), weight, ctx.conv)
        if need_weight or need_bias:
            # Rarely needed with a graph: PyTorch's own (differentiable) formula then.
            _, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, *ctx.conv[:3], False, [0] * len(ctx.conv[0]),
                ctx.conv[3], [False, need_weight, need_bias and ctx.has_bias],
            )
        return grad_x, grad_weight, grad_bias, None


def _fast_conv_forward(layer: nn.Conv2d, x, weight, bias):
    conv = (list(layer.stride), list(layer.padding), list(layer.dilation), layer.groups)
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        get_dtype = getattr(torch, "get_autocast_dtype", None)  # torch >= 2.4
        if get_dtype is None:
            return type(layer)._conv_forward(layer, x, weight, bias)
        # Autocast's own rule for a convolution (every input in the lower precision),
        # applied by hand: PyTorch's generic double backward of a convolution is several
        # times slower, and under autocast it would be the one used.
        dtype = get_dtype(device_type)
        x, weight = x.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast(device_type, enabled=False):
            return _Conv2dFunction.apply(x, weight, bias, conv)
    return _Conv2dFunction.apply(x, weight, bias, conv)


def _bn_backward(grad_out, x, weight, mean, invstd, eps, output_mask):
    return torch.ops.aten.native_batch_norm_backward(
        grad_out, x, weight, None, None, mean, invstd, True, eps, output_mask
    )


class _BatchNormInputGrad(torch.autograd.Function):
    """``dx`` of training-mode BatchNorm as a function of ``(grad_out, x, weight)``.

    Its backward is the closed form of the second derivative: two BatchNorm backward
    kernels, one product and its reduction, and three fused elementwise passes, where
    PyTorch's generic formula makes some thirty.
    """

    @staticmethod
    def forward(ctx, grad_out, x, weight, mean, invstd, eps):
        ctx.save_for_backward(grad_out, x, weight, mean, invstd)
        ctx.eps = eps
        return _bn_backward(grad_out, x, weight, mean, invstd, eps, [True, False, False])[0]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v):
        # Per channel, over its N values: r = invstd, xh = (x - mean) r, gx = g r (gy - m1 -
        # xh m2) with m1 = mean(gy), m2 = mean(gy xh), so F = <v, gx> = g r N (mvg - m1 mv -
        # m2 mvx) (mv, mvx, mvg: means of v, v xh, v gy). gx is g r times a symmetric
        # projection of gy, so dF/dgy is the same BatchNorm backward applied to v, and the
        # kernel that computes it also returns N mvx and N mv (its weight and bias
        # gradients); a second call returns N m2 and N m1. Fused kernels instead of a dozen
        # elementwise passes and reductions: on a GPU at small batches each is a launch.
        grad_out, x, weight, mean, invstd = ctx.saved_tensors
        need_grad_out, need_x, need_weight = ctx.needs_input_grad[:3]
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        n_values = x.numel() // x.shape[1]
        grad_grad_out, sum_vxh, sum_v = _bn_backward(
            v, x, weight, mean, invstd, ctx.eps, [need_grad_out, True, True]
        )
        if not (need_x or need_weight):
            return grad_grad_out, None, None, None, None, None
        _, sum_gxh, sum_g = _bn_backward(
            grad_out, x, weight, mean, invstd, ctx.eps, [False, True, True]
        )
        # The per-channel means as rows of one tensor, so that one division makes all
        # five and one product the pairs (mv m1, mvx m2): the per-channel algebra is
        # some twenty operations on C values, each a launch on a GPU.
        means = torch.stack(
            [sum_v, sum_vxh, sum_g, sum_gxh, (v * grad_out).sum(dims)]) / n_values
        mv, mvx, m1, m2, mvg = (means[i] for i in range(5))
        pairs = means[0:2] * means[2:4]
        minus_bracket = pairs.sum(0) - mvg  # m1 mv + m2 mvx - mvg
        grad_x = grad_weight = None
        if need_x:
            # -g r^2 [xh (bracket - 2 m2 mvx) + mvx gy + m2 v - mvx m1 - m2 mv], as
            # c0 + c1 x - S mvx gy - S m2 v with S = g r^2, xh = (x - mean) r.
            scale = torch.mul(weight, invstd).mul_(invstd)
            coef_x = torch.add(minus_bracket, pairs[1], alpha=2).mul_(scale * invstd)
            cross = torch.addcmul(mvx * m1, m2, mv)
            coef_0 = torch.addcmul(scale * cross, coef_x, mean, value=-1)
            coef_gv = scale * means[1:4:2]  # S mvx, S m2
            grad_x = torch.addcmul(coef_0.view(shape), coef_x.view(shape), x)
            grad_x.addcmul_(coef_gv[0].view(shape), grad_out, value=-1)
            grad_x.addcmul_(coef_gv[1].view(shape), v, value=-1)
        if need_weight:
            grad_weight = torch.mul(invstd, minus_bracket).mul_(-n_values)
        return grad_grad_out, grad_x, grad_weight, None, None, None


class _BatchNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, factor, eps):
        out, mean, invstd = torch.ops.aten.native_batch_norm(
            x, weight, bias, running_mean, running_var, True, factor, eps
        )
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, mean, invstd = ctx.saved_tensors
        need_x, need_weight, need_bias = (_used(ctx, i) for i in range(3))
        grad_x = grad_weight = grad_bias = None
        if not torch.is_grad_enabled():
            grad_x, grad_weight, grad_bias = _bn_backward(
                grad_out, x, weight, mean, invstd, ctx.eps, [need_x, need_weight, need_bias]
            )
        else:
            if need_x:
                grad_x = _BatchNormInputGrad.apply(grad_out, x, weight, mean, invstd, ctx.eps)
            if need_weight or need_bias:
                _, grad_weight, grad_bias = _bn_backward(
                    grad_out, x, weight, mean, invstd, ctx.eps, [False, need_weight, need_bias]
                )
        return grad_x, grad_weight, grad_bias, None, None, None, None


def _fast_batch_norm_forward(layer: nn.BatchNorm2d, x):
    if (not layer.training or not layer.affine or x.dim() != 4
            or torch.is_autocast_enabled(x.device.type)
            # What torch.nn.functional.batch_norm rejects in training (native_batch_norm
            # does not): PyTorch's path raises its own error. Shapes only, no device read.
            or x.shape[0] * x.shape[2] * x.shape[3] == 1 or layer.eps <= 0):
        return type(layer).forward(layer, x)
    # The running-statistics bookkeeping of torch.nn.modules.batchnorm._BatchNorm.forward.
    factor = 0.0 if layer.momentum is None else layer.momentum
    if layer.track_running_stats and layer.num_batches_tracked is not None:
        layer.num_batches_tracked.add_(1)
        if layer.momentum is None:
            factor = 1.0 / float(layer.num_batches_tracked)
    running_mean = layer.running_mean if layer.track_running_stats else None
    running_var = layer.running_var if layer.track_running_stats else None
    return _BatchNormFunction.apply(
        x, layer.weight, layer.bias, running_mean, running_var, factor, layer.eps
    )


class _CropFunction(torch.autograd.Function):
    """The backward pass of zero padding: the padded gradient's interior, as a view."""

    @staticmethod
    def forward(ctx, grad_out, padding):
        ctx.padding = padding
        left, right, top, bottom = padding
        height, width = grad_out.shape[-2:]
        return grad_out[..., top:height - bottom, left:width - right]

    @staticmethod
    def backward(ctx, grad_grad):
        return nn.functional.pad(grad_grad, ctx.padding), None


class _ZeroPadFunction(torch.autograd.Function):
    # PyTorch's backward of a pad is a pad by negative amounts, which fills a new tensor
    # with zeros and copies the interior into it; a view of the interior does the same.
    @staticmethod
    def forward(ctx, x, padding):
        ctx.padding = padding
        return nn.functional.pad(x, padding)

    @staticmethod
    def backward(ctx, grad_out):
        return _CropFunction.apply(grad_out, ctx.padding), None


class _ReluInputGrad(torch.autograd.Function):
    """``dx`` of a ReLU as a function of ``grad_out``, given the ReLU's output.

    PyTorch's double backward of a ReLU also returns a gradient for the ReLU's output
    (its mask, whose derivative is 0): a zero-filled map of the layer's size, which
    autograd then adds to that output's other gradient, a full elementwise pass. This
    backward returns none: the same gradients, without the two passes.
    """

    @staticmethod
    def forward(ctx, grad_out, result):
        ctx.save_for_backward(result)
        return torch.ops.aten.threshold_backward(grad_out, result, 0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_grad):
        (result,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad_grad, result, 0), None


class _ReluFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        result = torch.relu(x)
        ctx.save_for_backward(result)
        return result

    @staticmethod
    def backward(ctx, grad_out):
        (result,) = ctx.saved_tensors
        if not torch.is_grad_enabled():
            return torch.ops.aten.threshold_backward(grad_out, result, 0)
        # Only the mask of the output is needed: no edge back to this node.
        return _ReluInputGrad.apply(grad_out, result.detach())


def _fast_relu_forward(layer: nn.ReLU, x):
    return _ReluFunction.apply(x)


class _EluInputGrad(torch.autograd.Function):
    """``dx`` of an ELU (or SELU) as a function of ``grad_out``, given its input.

    With ``f`` the activation, ``dx = f'(x) g``; its derivatives are ``f'(x) v`` for
    ``g`` and ``f''(x) g v`` for ``x``, where ``f''(x) = f'(x) * input_scale`` below
    zero and 0 above. PyTorch's formula for the latter runs six elementwise passes
    (a comparison, a dtype conversion, four products); this one three.
    """

    @staticmethod
    def forward(ctx, grad_out, x, coefficients):
        ctx.save_for_backward(grad_out, x)
        ctx.coefficients = coefficients
        return torch.ops.aten.elu_backward(grad_out, *coefficients, False, x)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, v):
        grad_out, x = ctx.saved_tensors
        coefficients = ctx.coefficients
        need_grad_out, need_x = ctx.needs_input_grad[:2]
        grad_grad_out = torch.ops.aten.elu_backward(v, *coefficients, False, x)
        grad_x = None
        if need_x:
            input_scale = coefficients[2]
            # f'(x) v g (input_scale) below zero: the negative branch of f' is its own
            # derivative up to input_scale.
            product = grad_grad_out * grad_out
            if input_scale != 1:
                product = product * input_scale
            grad_x = torch.where(x < 0, product, 0.0)
        return (grad_grad_out if need_grad_out else None), grad_x, None


class _EluFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coefficients):
        ctx.save_for_backward(x)
        ctx.coefficients = coefficients
        return torch.ops.aten.elu(x, *coefficients)

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        if not torch.is_grad_enabled():
            return torch.ops.aten.elu_backward(grad_out, *ctx.coefficients, False, x), None
        return _EluInputGrad.apply(grad_out, x, ctx.coefficients), None


# torch.selu's constants (ATen's SELU_ALPHA and SELU_SCALE).
_SELU = (1.6732632423543772848170429916717, 1.0507009873554804934193349852946, 1.0)


def _fast_elu_forward(layer: nn.ELU | nn.SELU, x):
    coefficients = _SELU if isinstance(layer, nn.SELU) else (float(layer.alpha), 1.0, 1.0)
    return _EluFunction.apply(x, coefficients)


def _fast_zero_pad_forward(layer: nn.ZeroPad2d, x):
    padding = tuple(int(p) for p in layer.padding)
    if x.dim() != 4 or min(padding) < 0:
        return type(layer).forward(layer, x)
    return _ZeroPadFunction.apply(x, padding)


@contextlib.contextmanager
def fast_double_backward(module: nn.Module) -> Iterator[None]:
    """Give the ``Conv2d``, ``BatchNorm2d``, ``ZeroPad2d``, ``ReLU``, ``ELU`` and ``SELU``
    layers of ``module`` a faster double backward.

    Forward values, running statistics and gradients are unchanged (up to rounding);
    only the kernels that differentiate the layers' backward passes change (see the
    module docstring). Under autocast, convolutions run in its lower
    precision as they would without the patch. Convolutions with a padding mode other
    than zeros or a string padding, BatchNorm in eval mode, without affine
    parameters, under autocast or given input that PyTorch rejects in training (one
    value per channel, ``eps <= 0``: its error is raised), and in-place activations
    keep PyTorch's path.
    Subclasses keep their own code: a convolution class that overrides
    ``_conv_forward``, a BatchNorm or padding class that overrides ``forward``, and any
    subclass of the activations are left as they are.

    Parameters
    ----------
    module : torch.nn.Module
        The network; restored on exit.
    """
    patched = []
    for layer in module.modules():
        # The patches re-implement PyTorch's own code: a subclass that overrides it, or a
        # layer whose instance does, keeps its own.
        kind = type(layer)
        if (isinstance(layer, nn.Conv2d) and kind._conv_forward is nn.Conv2d._conv_forward
                and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
                and "_conv_forward" not in vars(layer)):
            layer._conv_forward = functools.partial(_fast_conv_forward, layer)
            patched.append((layer, "_conv_forward"))
        elif (isinstance(layer, nn.BatchNorm2d) and kind.forward is nn.BatchNorm2d.forward
                and "forward" not in vars(layer)):
            layer.forward = functools.partial(_fast_batch_norm_forward, layer)
            patched.append((layer, "forward"))
        elif (isinstance(layer, nn.ZeroPad2d) and kind.forward is nn.ZeroPad2d.forward
                and "forward" not in vars(layer)):
            layer.forward = functools.partial(_fast_zero_pad_forward, layer)
            patched.append((layer, "forward"))
        elif (type(layer) is nn.ReLU and not layer.inplace
                and "forward" not in vars(layer)):
            layer.forward = functools.partial(_fast_relu_forward, layer)
            patched.append((layer, "forward"))
        elif (type(layer) in (nn.ELU, nn.SELU) and not layer.inplace
                and "forward" not in vars(layer)):
            layer.forward = functools.partial(_fast_elu_forward, layer)
            patched.append((layer, "forward"))
    try:
        yield
    finally:
        for layer, name in patched:
            delattr(layer, name)
