// Value types of the GroupNorm layer (group_norm.hpp): options only, no operations.
#pragma once

#include <cstdint>

#include "normkit/batch_norm_types.hpp"  // ChannelAxis

namespace normkit {

struct GroupNormOptions {
  ChannelAxis channel_axis = ChannelAxis::first;
  // G, dividing C; 0: one group a channel (InstanceNorm).
  std::int64_t groups = 32;
  // Added to the variance before the inverse square root; finite, >= 0, rounded to float32.
  double eps = 1e-5;

  // PyTorch's nn.GroupNorm(num_groups, C): channels first, eps 1e-5.
  static GroupNormOptions pytorch(std::int64_t groups) {
    GroupNormOptions o;
    o.groups = groups;
    return o;
  }
  // Keras GroupNormalization: axis -1 (channels last), groups 32, epsilon 1e-3.
  static GroupNormOptions keras(std::int64_t groups = 32) {
    GroupNormOptions o;
    o.channel_axis = ChannelAxis::last;
    o.groups = groups;
    o.eps = 1e-3;
    return o;
  }
  // PyTorch's nn.InstanceNorm2d(C) (affine=False, track_running_stats=False): a group a channel, eps 1e-5.
  static GroupNormOptions instance_norm() {
    GroupNormOptions o;
    o.groups = 0;
    return o;
  }
};

}  // namespace normkit
