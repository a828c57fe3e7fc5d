// Value types of the BatchNorm layer (batch_norm.hpp): options only, no operations.
#pragma once

#include <cstdint>

namespace normkit {

// Where the channel axis of x is.
enum class ChannelAxis : std::uint8_t {
  first,  // x = [N, C, spatial...]: NCHW, NCL, [N, C] (PyTorch's BatchNorm1d/2d/3d)
  last,   // x = [..., C]: NHWC, NLC, [N, C] (Keras BatchNormalization(axis=-1), channels-last models)
};

// How the running statistics are updated after a training batch with mean m and variance v.
enum class RunningStatsConvention : std::uint8_t {
  // running_mean = (1 - momentum) * running_mean + momentum * m
  // running_var  = (1 - momentum) * running_var  + momentum * v * n / (n - 1)     (unbiased, n values)
  // momentum is the weight of the batch (PyTorch default 0.1); BatchNormOptions::cumulative_average is
  // PyTorch's momentum=None.
  pytorch,
  // moving_mean = moving_mean * momentum + m * (1 - momentum)
  // moving_var  = moving_var  * momentum + v * (1 - momentum)                    (biased)
  // momentum is the weight of the running value (Keras default 0.99).
  keras,
};

struct BatchNormOptions {
  ChannelAxis channel_axis = ChannelAxis::first;
  // Added to the variance before the inverse square root; finite, >= 0, rounded to float32. PyTorch 1e-5,
  // Keras 1e-3.
  double eps = 1e-5;
  RunningStatsConvention running_stats = RunningStatsConvention::pytorch;
  // In [0, 1]; its meaning follows running_stats (see above). PyTorch 0.1, Keras 0.99.
  double momentum = 0.1;
  // PyTorch's momentum=None (pytorch convention only): the batch's weight is 1 / batches_tracked, so the
  // running statistics are the plain average of every batch so far.
  bool cumulative_average = false;
  // With cumulative_average: the batches seen including this one (PyTorch's num_batches_tracked after its
  // increment), >= 1. Ignored otherwise.
  std::int64_t batches_tracked = 1;

  // PyTorch's nn.BatchNorm2d defaults: channels first, eps 1e-5, momentum 0.1 (weight of the batch).
  static BatchNormOptions pytorch() { return BatchNormOptions{}; }
  // Keras BatchNormalization defaults: axis -1 (channels last), epsilon 1e-3, momentum 0.99 (weight of
  // the running value).
  static BatchNormOptions keras() {
    BatchNormOptions o;
    o.channel_axis = ChannelAxis::last;
    o.eps = 1e-3;
    o.running_stats = RunningStatsConvention::keras;
    o.momentum = 0.99;
    return o;
  }
};

}  // namespace normkit
