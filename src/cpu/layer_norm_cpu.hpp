// Host engine of LayerNorm / RMSNorm: the kernels' arithmetic in the kernels' order (plan::RowNormLayout),
// so that both give the same bits.
#pragma once

#include "normkit/status.hpp"
#include "plan/layer_norm_plan.hpp"

namespace normkit::cpu {

Status row_norm_forward(const plan::RowNormForwardCall& call, int threads);
Status row_norm_backward(const plan::RowNormBackwardCall& call, int threads);

}  // namespace normkit::cpu
