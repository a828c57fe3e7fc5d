"""normkit's layers as PyTorch operators: LayerNorm, RMSNorm, BatchNorm and GroupNorm, forward and backward, on CPU
tensors (normkit's host engine) and CUDA tensors (its kernels, on PyTorch's current stream, no synchronization).

    import normkit.torch as nkt
    y = nkt.layer_norm(x, (768,), weight, bias, eps=1e-5)        # torch.nn.functional's signatures
    model = nkt.convert(model)                                  # nn.LayerNorm/RMSNorm/BatchNorm*/GroupNorm -> normkit's

Each operator is a `torch.library.custom_op` in the `normkit` namespace (torch.ops.normkit.layer_norm, ...) with a
fake (meta) kernel, so torch.compile traces it, and an autograd formula whose backward is normkit's deterministic
backward (another custom op): the gradients are the same bits on every run and batch size (see the C++ headers
under include/normkit/ for each formula, its float32 statistics and its edge cases).

Differences from PyTorch a user may meet: x in float32, float16 or bfloat16 (not float64: TypeError); BatchNorm's
running statistics, weight and bias are computed in float32 (other dtypes are converted and written back);
GroupNorm with eps = 0 on a constant group gives y = bias where PyTorch gives NaN; double backward is not
supported. Non-contiguous inputs are made contiguous (a copy), except channels_last tensors, which BatchNorm and
GroupNorm read as they are (NHWC) and answer in the same memory format.

Importing this module needs PyTorch >= 2.4 (torch.library.custom_op); `import normkit` never imports torch."""
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import _arrays, _normkit
from . import functional as _f

if not hasattr(torch.library, "custom_op"):  # pragma: no cover - old PyTorch
    raise ImportError(f"normkit.torch needs PyTorch >= 2.4 (torch.library.custom_op); this is {torch.__version__}")

__all__ = ["layer_norm", "rms_norm", "batch_norm", "group_norm", "LayerNorm", "RMSNorm", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d",
           "SyncBatchNorm", "GroupNorm", "convert"]

def _empty(x: Tensor) -> Tensor:
    """What an operator returns for an output nobody asked for (custom ops return tensors, not None)."""
    return x.new_empty((0,), dtype=torch.float32)


def _channels_last_view(x: Tensor) -> Optional[Tensor]:
    """x's channels-last (NHWC / NDHWC) memory as a C-contiguous view with the channels last, when x is stored so and
    not also C-contiguous; None otherwise."""
    if x.dim() < 3 or x.is_contiguous():
        return None
    moved = x.movedim(1, -1)
    return moved if moved.is_contiguous() else None


def _channel_input(x: Tensor, like: Optional[Tensor] = None):
    """(array for normkit, channel_axis): x as it is stored when it is channels-last (or must follow `like`, the
    forward's x, in that format), else contiguous with the channels on axis 1."""
    if _channels_last_view(x if like is None else like) is not None:
        return x.movedim(1, -1).contiguous(), -1
    return x.contiguous(), 1


def _from_channel_input(t: Tensor, axis: int) -> Tensor:
    """A result of normkit on _channel_input's array back in x's axis order (a channels-last view when axis = -1)."""
    return t.movedim(-1, 1) if axis == -1 else t


def _channel_grads(x: Tensor, axis: int, dx, dweight, dbias):
    """BatchNorm/GroupNorm gradients as the operators return them: x's axis order, empty tensors for those not asked."""
    return (_empty(x) if dx is None else _from_channel_input(dx, axis), _empty(x) if dweight is None else dweight,
            _empty(x) if dbias is None else dbias)


def _channel_output_like(x: Tensor) -> Tensor:
    """An empty tensor laid out as the BatchNorm/GroupNorm operators answer x: channels-last memory for a
    channels-last x (as _channel_input reads it), else contiguous (the fake kernels' strides must be the real ones)."""
    if _channels_last_view(x) is not None:
        return x.new_empty(tuple(x.movedim(1, -1).shape)).movedim(-1, 1)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _fake_channel_grads(x: Tensor, weight: Optional[Tensor], need_dx: bool, need_dbias: bool):
    channels = x.shape[1]
    return (_channel_output_like(x) if need_dx else _empty(x), x.new_empty((channels,), dtype=torch.float32) if weight is not None else _empty(x),
            x.new_empty((channels,), dtype=torch.float32) if need_dbias else _empty(x))


def _float32(t: Optional[Tensor]) -> Optional[Tensor]:
    """t as float32 (itself when it is already float32 or None)."""
    return t if t is None or t.dtype == torch.float32 else t.float()


def _params(x: Tensor, *params: Optional[Tensor]):
    """LayerNorm's weight and bias as normkit takes them: one dtype, float32 or x's (else both converted to float32)."""
    given = [p for p in params if p is not None]
    same = len({p.dtype for p in given}) <= 1 and all(p.dtype in (torch.float32, x.dtype) for p in given)
    return tuple(None if p is None else (p.contiguous() if same else p.float().contiguous()) for p in params)


def _grad_or_none(g: Tensor, wanted: bool, like: Optional[Tensor]):
    if not wanted or like is None:
        return None
    return g if g.dtype == like.dtype else g.to(like.dtype)


# ---- LayerNorm / RMSNorm ---------------------------------------------------------------------------------------

@torch.library.custom_op("normkit::layer_norm", mutates_args=())
def _layer_norm_op(x: Tensor, normalized_ndim: int, weight: Optional[Tensor], bias: Optional[Tensor], eps: float, rms: bool
                   ) -> Tuple[Tensor, Tensor, Tensor]:
    x = x.contiguous()
    weight, bias = _params(x, weight, bias)
    if rms:
        y, rstd = _f.rms_norm(x, weight, eps=eps, normalized_ndim=normalized_ndim, return_stats=True)
        return y, _empty(x), rstd
    return _f.layer_norm(x, weight, bias, eps=eps, normalized_ndim=normalized_ndim, return_stats=True)


@_layer_norm_op.register_fake
def _(x, normalized_ndim, weight, bias, eps, rms):
    rows = 1
    for e in x.shape[:x.dim() - normalized_ndim]:
        rows *= e
    stats = x.new_empty((rows,), dtype=torch.float32)
    return torch.empty_like(x, memory_format=torch.contiguous_format), (_empty(x) if rms else stats), x.new_empty((rows,), dtype=torch.float32)


@torch.library.custom_op("normkit::layer_norm_backward", mutates_args=())
def _layer_norm_backward_op(dy: Tensor, x: Tensor, mean: Optional[Tensor], rstd: Tensor, weight: Optional[Tensor], normalized_ndim: int,
                            eps: float, rms: bool, need_dx: bool, need_dweight: bool, need_dbias: bool) -> Tuple[Tensor, Tensor, Tensor]:
    x, dy = x.contiguous(), dy.contiguous()
    (weight,) = _params(x, weight)  # (its values as the forward used them; dweight converted back by autograd's wrapper)
    if rms:
        dx, dweight = _f.rms_norm_backward(dy, x, rstd, weight, eps=eps, normalized_ndim=normalized_ndim, input_grad=need_dx)
        dbias = None
    else:
        dx, dweight, dbias = _f.layer_norm_backward(dy, x, mean, rstd, weight, with_bias=need_dbias, eps=eps, normalized_ndim=normalized_ndim,
                                                    input_grad=need_dx)
    return (dx if dx is not None else _empty(x), dweight if dweight is not None else _empty(x), dbias if dbias is not None else _empty(x))


@_layer_norm_backward_op.register_fake
def _(dy, x, mean, rstd, weight, normalized_ndim, eps, rms, need_dx, need_dweight, need_dbias):
    normalized = x.shape[x.dim() - normalized_ndim:]
    param_dtype = torch.float32 if weight is None or weight.dtype not in (torch.float32, x.dtype) else weight.dtype
    dx = torch.empty_like(x, memory_format=torch.contiguous_format) if need_dx else _empty(x)
    dweight = x.new_empty(normalized, dtype=param_dtype) if weight is not None else _empty(x)
    dbias = x.new_empty(normalized, dtype=param_dtype) if need_dbias and not rms else _empty(x)
    return dx, dweight, dbias


def _layer_norm_setup(ctx, inputs, output):
    x, normalized_ndim, weight, bias, eps, rms = inputs
    _, mean, rstd = output
    ctx.mark_non_differentiable(mean, rstd)
    ctx.save_for_backward(x, weight, bias, mean, rstd)
    ctx.normalized_ndim, ctx.eps, ctx.rms = normalized_ndim, eps, rms


def _layer_norm_backward(ctx, dy, _dmean, _drstd):
    x, weight, bias, mean, rstd = ctx.saved_tensors
    w = weight
    if weight is not None and bias is not None and weight.dtype != bias.dtype:
        w = weight.float()  # (as the forward took them: both float32, so dbias is not rounded to weight's dtype)
    need_dx, need_dweight, need_dbias = ctx.needs_input_grad[0], ctx.needs_input_grad[2], ctx.needs_input_grad[3]
    dx, dweight, dbias = torch.ops.normkit.layer_norm_backward(dy, x, None if ctx.rms else mean, rstd, w, ctx.normalized_ndim, ctx.eps,
                                                               ctx.rms, need_dx, need_dweight and weight is not None,
                                                               need_dbias and bias is not None)
    return (dx if need_dx else None, None, _grad_or_none(dweight, need_dweight, weight), _grad_or_none(dbias, need_dbias, bias), None, None)


_layer_norm_op.register_autograd(_layer_norm_backward, setup_context=_layer_norm_setup)


def _normalized_ndim(x: Tensor, normalized_shape, op: str) -> int:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if len(shape) == 0 or len(shape) > x.dim() or tuple(x.shape[x.dim() - len(shape):]) != shape:
        raise ValueError(f"normkit.torch.{op}: argument 'normalized_shape': expected the trailing dimensions of x {tuple(x.shape)}, got {shape}")
    return len(shape)


def layer_norm(input: Tensor, normalized_shape: Sequence[int], weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    """torch.nn.functional.layer_norm: y = (x - mean) / sqrt(var + eps) * weight + bias over the trailing
    `normalized_shape` (biased variance, float32 statistics)."""
    return _layer_norm_op(input, _normalized_ndim(input, normalized_shape, "layer_norm"), weight, bias, float(eps), False)[0]


def rms_norm(input: Tensor, normalized_shape: Sequence[int], weight: Optional[Tensor] = None, eps: Optional[float] = None) -> Tensor:
    """torch.nn.functional.rms_norm: y = x / sqrt(mean(x^2) + eps) * weight over the trailing `normalized_shape`;
    eps=None is torch.finfo(input.dtype).eps, as PyTorch."""
    eps = torch.finfo(input.dtype).eps if eps is None else eps
    return _layer_norm_op(input, _normalized_ndim(input, normalized_shape, "rms_norm"), weight, None, float(eps), True)[0]


# ---- BatchNorm ---------------------------------------------------------------------------------------------------

# A functional operator (autograd needs one): the updated running statistics come back as new tensors, which
# batch_norm() copies into the caller's buffers.
@torch.library.custom_op("normkit::batch_norm", mutates_args=())
def _batch_norm_op(x: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], running_mean: Optional[Tensor], running_var: Optional[Tensor],
                   training: bool, momentum: float, eps: float) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    data, axis = _channel_input(x)
    # (running statistics in float32: normkit updates them in place, here in new tensors)
    rm = None if running_mean is None else running_mean.to(torch.float32, copy=True)
    rv = None if running_var is None else running_var.to(torch.float32, copy=True)
    result = _f.batch_norm(data, rm, rv, _float32(weight), _float32(bias), training=training, momentum=momentum, eps=eps, channel_axis=axis,
                           return_stats=training)
    y, mean, rstd = result if training else (result, _empty(x), _empty(x))
    y = _from_channel_input(y, axis)
    if not training or rm is None:
        return y, mean, rstd, _empty(x), _empty(x)
    return y, mean, rstd, rm, rv


@_batch_norm_op.register_fake
def _(x, weight, bias, running_mean, running_var, training, momentum, eps):
    def channel_stats(wanted):
        return x.new_empty((x.shape[1],), dtype=torch.float32) if wanted else _empty(x)
    updated = training and running_mean is not None
    return _channel_output_like(x), channel_stats(training), channel_stats(training), channel_stats(updated), channel_stats(updated)


@torch.library.custom_op("normkit::batch_norm_backward", mutates_args=())
def _batch_norm_backward_op(dy: Tensor, x: Tensor, mean: Tensor, rstd_or_var: Tensor, weight: Optional[Tensor], training: bool, eps: float,
                            need_dx: bool, need_dweight: bool, need_dbias: bool) -> Tuple[Tensor, Tensor, Tensor]:
    data, axis = _channel_input(x)
    grad, _ = _channel_input(dy, like=x)
    dx, dweight, dbias = _f.batch_norm_backward(grad, data, _float32(mean).contiguous(), _float32(rstd_or_var).contiguous(), _float32(weight),
                                                with_bias=need_dbias, training=training, eps=eps, channel_axis=axis, input_grad=need_dx)
    return _channel_grads(x, axis, dx, dweight, dbias)


@_batch_norm_backward_op.register_fake
def _(dy, x, mean, rstd_or_var, weight, training, eps, need_dx, need_dweight, need_dbias):
    return _fake_channel_grads(x, weight, need_dx, need_dbias)


def _batch_norm_setup(ctx, inputs, output):
    x, weight, bias, running_mean, running_var, training, momentum, eps = inputs
    _, mean, rstd, new_mean, new_var = output
    ctx.mark_non_differentiable(mean, rstd, new_mean, new_var)
    # (inference's backward reads the running statistics: an in-place update before it raises, as in PyTorch)
    ctx.save_for_backward(x, weight, bias, *((mean, rstd) if training else (running_mean, running_var)))
    ctx.training, ctx.eps = training, eps


def _batch_norm_backward(ctx, dy, *_stats_grads):
    x, weight, bias, mean, rstd_or_var = ctx.saved_tensors
    need_dx, need_dweight, need_dbias = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
    dx, dweight, dbias = torch.ops.normkit.batch_norm_backward(dy, x, mean, rstd_or_var, weight, ctx.training, ctx.eps, need_dx,
                                                               need_dweight and weight is not None, need_dbias and bias is not None)
    return (dx if need_dx else None, _grad_or_none(dweight, need_dweight, weight), _grad_or_none(dbias, need_dbias, bias), None, None, None, None,
            None)


_batch_norm_op.register_autograd(_batch_norm_backward, setup_context=_batch_norm_setup)


def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor], weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """torch.nn.functional.batch_norm: per channel (axis 1), y = (x - mean) / sqrt(var + eps) * weight + bias with the
    batch's statistics (training; the running statistics, when given, updated in place: momentum weighs the batch,
    the running variance is unbiased) or the running ones (not training: required, as PyTorch)."""
    if not training and (running_mean is None or running_var is None):
        raise ValueError("normkit.torch.batch_norm: 'running_mean' and 'running_var' are required when not training (as PyTorch)")
    y, _, _, new_mean, new_var = _batch_norm_op(input, weight, bias, running_mean, running_var, bool(training), float(momentum), float(eps))
    if training and running_mean is not None:
        with torch.no_grad():
            running_mean.copy_(new_mean)
            running_var.copy_(new_var)
    return y


# ---- GroupNorm ---------------------------------------------------------------------------------------------------

@torch.library.custom_op("normkit::group_norm", mutates_args=())
def _group_norm_op(x: Tensor, num_groups: int, weight: Optional[Tensor], bias: Optional[Tensor], eps: float) -> Tuple[Tensor, Tensor, Tensor]:
    data, axis = _channel_input(x)
    y, mean, rstd = _f.group_norm(data, num_groups, _float32(weight), _float32(bias), eps=eps, channel_axis=axis, return_stats=True)
    return _from_channel_input(y, axis), mean, rstd


@_group_norm_op.register_fake
def _(x, num_groups, weight, bias, eps):
    stats = (x.shape[0], num_groups)
    return _channel_output_like(x), x.new_empty(stats, dtype=torch.float32), x.new_empty(stats, dtype=torch.float32)


@torch.library.custom_op("normkit::group_norm_backward", mutates_args=())
def _group_norm_backward_op(dy: Tensor, x: Tensor, mean: Tensor, rstd: Tensor, weight: Optional[Tensor], num_groups: int, eps: float,
                            need_dx: bool, need_dweight: bool, need_dbias: bool) -> Tuple[Tensor, Tensor, Tensor]:
    data, axis = _channel_input(x)
    grad, _ = _channel_input(dy, like=x)
    dx, dweight, dbias = _f.group_norm_backward(grad, data, mean, rstd, num_groups, _float32(weight), with_bias=need_dbias, eps=eps, channel_axis=axis,
                                                input_grad=need_dx)
    return _channel_grads(x, axis, dx, dweight, dbias)


@_group_norm_backward_op.register_fake
def _(dy, x, mean, rstd, weight, num_groups, eps, need_dx, need_dweight, need_dbias):
    return _fake_channel_grads(x, weight, need_dx, need_dbias)


def _group_norm_setup(ctx, inputs, output):
    x, num_groups, weight, bias, eps = inputs
    _, mean, rstd = output
    ctx.mark_non_differentiable(mean, rstd)
    ctx.save_for_backward(x, weight, bias, mean, rstd)
    ctx.num_groups, ctx.eps = num_groups, eps


def _group_norm_backward(ctx, dy, _dmean, _drstd):
    x, weight, bias, mean, rstd = ctx.saved_tensors
    need_dx, need_dweight, need_dbias = ctx.needs_input_grad[0], ctx.needs_input_grad[2], ctx.needs_input_grad[3]
    dx, dweight, dbias = torch.ops.normkit.group_norm_backward(dy, x, mean, rstd, weight, ctx.num_groups, ctx.eps, need_dx,
                                                               need_dweight and weight is not None, need_dbias and bias is not None)
    return dx if need_dx else None, None, _grad_or_none(dweight, need_dweight, weight), _grad_or_none(dbias, need_dbias, bias), None


_group_norm_op.register_autograd(_group_norm_backward, setup_context=_group_norm_setup)


def group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    """torch.nn.functional.group_norm: the C channels (axis 1) in num_groups groups; each (sample, group) normalized
    with its own mean and biased variance, then * weight[c] + bias[c]."""
    if input.dim() < 2 or num_groups < 1 or input.shape[1] % num_groups:
        raise ValueError(f"normkit.torch.group_norm: argument 'num_groups': expected a divisor of the {input.shape[1] if input.dim() > 1 else '?'} "
                         f"channels, got {num_groups}")
    return _group_norm_op(input, int(num_groups), weight, bias, float(eps))[0]


# ---- modules -----------------------------------------------------------------------------------------------------

class LayerNorm(torch.nn.LayerNorm):
    """torch.nn.LayerNorm computed by normkit (same parameters, state dict and defaults)."""

    def forward(self, input: Tensor) -> Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)


class RMSNorm(torch.nn.RMSNorm):
    """torch.nn.RMSNorm computed by normkit (same parameters, state dict and defaults: eps=None is the input
    dtype's machine epsilon)."""

    def forward(self, input: Tensor) -> Tensor:
        return rms_norm(input, self.normalized_shape, self.weight, self.eps)


def _batch_norm_bookkeeping(module):
    """torch.nn.modules.batchnorm._BatchNorm.forward's bookkeeping (num_batches_tracked, the running statistics'
    factor, whether the batch's statistics are used): (running_mean, running_var, batch_stats, factor)."""
    factor = 0.0 if module.momentum is None else module.momentum
    if module.training and module.track_running_stats and module.num_batches_tracked is not None:
        module.num_batches_tracked.add_(1)
        factor = 1.0 / float(module.num_batches_tracked) if module.momentum is None else module.momentum
    batch_stats = module.training or (module.running_mean is None and module.running_var is None)
    track = not module.training or module.track_running_stats
    return (module.running_mean if track else None), (module.running_var if track else None), batch_stats, factor


class _BatchNormForward:
    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        running_mean, running_var, batch_stats, factor = _batch_norm_bookkeeping(self)
        return batch_norm(input, running_mean, running_var, self.weight, self.bias, batch_stats, factor, self.eps)


class BatchNorm1d(_BatchNormForward, torch.nn.BatchNorm1d):
    """torch.nn.BatchNorm1d computed by normkit."""


class BatchNorm2d(_BatchNormForward, torch.nn.BatchNorm2d):
    """torch.nn.BatchNorm2d computed by normkit (channels_last inputs are read as NHWC, without a copy)."""


class BatchNorm3d(_BatchNormForward, torch.nn.BatchNorm3d):
    """torch.nn.BatchNorm3d computed by normkit."""


# ---- SyncBatchNorm ---------------------------------------------------------------------------------------------

_SUMMARY_BYTES = 80  # (a StatsSummary: normkit's per-channel count, mean, M2, ... as raw bytes)


def _all_gather(t: Tensor, group) -> Tensor:
    """[world, *t.shape]: every rank's t, in rank order (torch.distributed's all_gather: every backend has it)."""
    world = torch.distributed.get_world_size(group)
    parts = [torch.empty_like(t) for _ in range(world)]
    torch.distributed.all_gather(parts, t.contiguous(), group=group)
    return torch.stack(parts)


class _SyncBatchNormFunction(torch.autograd.Function):
    """BatchNorm over the whole batch of a process group: each rank's per-channel summaries (count, mean, M2)
    all-gathered and merged in rank order with Chan's formula (every rank the same bits, whatever the part
    sizes), normalized with them; backward: the two per-channel sums all-gathered and added in rank order.
    dweight/dbias are this rank's part, as PyTorch's SyncBatchNorm leaves them (DDP averages them)."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        data, axis = _channel_input(x)
        channels = x.shape[1]
        stream = _arrays.stream_handle(None, data)
        local = data.new_empty((channels * _SUMMARY_BYTES,), dtype=torch.uint8)
        _normkit.batch_norm_statistics(data, local, axis == -1, float(eps), stream)
        everyone = _all_gather(local, group)
        merged = everyone[0].clone()
        for r in range(1, everyone.shape[0]):
            _normkit.merge_summaries(merged, everyone[r], stream)
        count = int(merged[:8].clone().view(torch.int64).item())  # (channel 0's count: every channel's; synchronizes)
        if count <= 1:
            raise ValueError(f"normkit.torch.SyncBatchNorm: expected more than 1 value per channel when training, got {count} over the group")
        mean = data.new_empty((channels,), dtype=torch.float32)
        rstd = data.new_empty((channels,), dtype=torch.float32)
        rm, rv = _float32(running_mean), _float32(running_var)  # (updated in place: other dtypes through a float32 copy)
        _normkit.batch_norm_finalize(merged, rm, rv, mean, rstd, float(eps), float(momentum), "pytorch", False, 1, stream)
        if running_mean is not None and rm is not running_mean:
            running_mean.copy_(rm)
            running_var.copy_(rv)
        y = torch.empty_like(data)
        _normkit.batch_norm_normalize(data, mean, rstd, _float32(weight), _float32(bias), y, axis == -1, float(eps), stream)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.count, ctx.group, ctx.bias_dtype = count, group, None if bias is None else bias.dtype
        return _from_channel_input(y, axis)

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, rstd = ctx.saved_tensors
        data, axis = _channel_input(x)
        grad, _ = _channel_input(dy, like=x)
        stream = _arrays.stream_handle(None, data)
        sums = data.new_empty((2, x.shape[1]), dtype=torch.float32)  # this rank's Σ dy, Σ dy (x - mean)
        _normkit.batch_norm_backward_reduce(grad, data, mean, sums[0], sums[1], axis == -1, stream)
        everyone = _all_gather(sums, ctx.group)
        total = everyone[0].clone()
        for r in range(1, everyone.shape[0]):
            total = total + everyone[r]  # (float32, in rank order: every rank the same bits)
        dx = None
        if ctx.needs_input_grad[0]:
            out = torch.empty_like(data)
            _normkit.batch_norm_backward_apply(grad, data, mean, rstd, _float32(weight), total[0], total[1], ctx.count, out, axis == -1, stream)
            dx = _from_channel_input(out, axis)
        dweight = (sums[1] * rstd).to(weight.dtype) if weight is not None and ctx.needs_input_grad[1] else None
        dbias = sums[0].to(ctx.bias_dtype) if ctx.bias_dtype is not None and ctx.needs_input_grad[2] else None
        return dx, dweight, dbias, None, None, None, None, None


class SyncBatchNorm(torch.nn.SyncBatchNorm):
    """torch.nn.SyncBatchNorm computed by normkit: in training, within an initialised process group of several
    ranks, the statistics of the whole batch from every rank's per-channel summaries, all-gathered (the group's
    backend: NCCL for CUDA tensors, Gloo for CPU ones) and merged in rank order, so every rank holds bitwise the
    same mean, variance and running statistics whatever its part's size; otherwise BatchNorm (as PyTorch's).
    Gradients follow PyTorch's SyncBatchNorm: dx from the group's sums, dweight/dbias this rank's part (DDP
    averages parameter gradients). The forward reads the merged count back to the host (one synchronization)."""

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        running_mean, running_var, batch_stats, factor = _batch_norm_bookkeeping(self)
        group = None
        if batch_stats and self.training and torch.distributed.is_available() and torch.distributed.is_initialized():
            group = self.process_group or torch.distributed.group.WORLD
            if torch.distributed.get_world_size(group) < 2:
                group = None
        if group is None:
            return batch_norm(input, running_mean, running_var, self.weight, self.bias, batch_stats, factor, self.eps)
        return _SyncBatchNormFunction.apply(input, self.weight, self.bias, running_mean, running_var, self.eps, factor, group)


class GroupNorm(torch.nn.GroupNorm):
    """torch.nn.GroupNorm computed by normkit."""

    def forward(self, input: Tensor) -> Tensor:
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)


_REPLACEMENTS = [(torch.nn.LayerNorm, LayerNorm), (torch.nn.RMSNorm, RMSNorm), (torch.nn.BatchNorm1d, BatchNorm1d),
                 (torch.nn.BatchNorm2d, BatchNorm2d), (torch.nn.BatchNorm3d, BatchNorm3d), (torch.nn.SyncBatchNorm, SyncBatchNorm),
                 (torch.nn.GroupNorm, GroupNorm)]


def convert(module: torch.nn.Module) -> torch.nn.Module:
    """Swaps, in place, every nn.LayerNorm, nn.RMSNorm, nn.BatchNorm1d/2d/3d, nn.SyncBatchNorm and nn.GroupNorm of
    `module` (itself included) for normkit's subclass: parameters, buffers, state dict and hooks stay; returns
    `module`. Subclasses of those (user classes) are left alone."""
    for m in module.modules():
        for original, replacement in _REPLACEMENTS:
            if type(m) is original:
                m.__class__ = replacement
    return module
