// Host-side entry points of the LayerNorm / RMSNorm kernels (plain C++: included by the API layer; a build
// without CUDA links stubs that fail cleanly).
#pragma once

#include "normkit/status.hpp"
#include "normkit/tensor.hpp"
#include "plan/layer_norm_plan.hpp"

namespace normkit::kernels {

// Enqueues the forward on `stream`.
Status launch_row_norm_forward(const plan::RowNormForwardCall& call, const plan::RowNormPlan& plan, Stream stream);
// Enqueues the backward (and, with dgamma or dbeta, the partial sums in `workspace`, plan.partials x n x 2
// float32, and their final sum).
Status launch_row_norm_backward(const plan::RowNormBackwardCall& call, const plan::RowNormPlan& plan, void* workspace,
                                Stream stream);

}  // namespace normkit::kernels
