#include "cpu/apply_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/parallel_items.hpp"
#include "math/dtype_dispatch.hpp"
#include "math/lp.hpp"
#include "math/transform.hpp"
#include "plan/apply_plan.hpp"

namespace normkit::cpu {
namespace {

template <typename Compute>
math::AffineColumn<Compute> coefficient(const AffineCoefficients& c, std::int64_t k) {
  return math::prepare_column<Compute>(math::Affine{c.center[k], c.scale[k], c.offset[k], c.fill ? c.fill[k] : NAN});
}

template <typename In, typename Out>
void run(const In* in, Out* out, const plan::CanonicalGeometry& g, const AffineCoefficients& c, int threads) {
  using Compute = math::compute_type_t<In, Out>;
  const plan::ApplyPlan p = plan::choose_apply_plan(g, DType::float32, DType::float32, 0, 0, 1);
  const auto flags = math::prepare_flags<Compute>(c.fill != nullptr, c.clip, c.clip_min, c.clip_max);
  auto apply = [&flags](const In* x, Out* y, std::int64_t n, const math::AffineColumn<Compute>& a) {
    for (std::int64_t i = 0; i < n; ++i) math::store_as(y + i, math::apply_affine_value(math::to_acc<Compute>(x[i]), a, flags));
  };
  switch (p.kernel) {
    case plan::ApplyKernel::rows:
    case plan::ApplyKernel::spans:  // (the device's walk of short rows; the same rows here)
      parallel_range(p.rows, p.row_length, threads, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t r = begin; r < end; ++r) {
          apply(in + r * p.row_length, out + r * p.row_length, p.row_length, coefficient<Compute>(c, plan::rows_kept_index(r, p.period, p.repeat)));
        }
      });
      break;
    case plan::ApplyKernel::columns:
      parallel_range(p.outer * p.rows_per_outer, p.inner, threads, [&](std::int64_t begin, std::int64_t end) {
        std::vector<math::AffineColumn<Compute>> row_coefficients(static_cast<std::size_t>(p.inner));
        std::vector<Compute> soa;
        std::int64_t loaded_outer = -1, loaded_soa = -1;
        for (std::int64_t r = begin; r < end; ++r) {
          const std::int64_t o = r / p.rows_per_outer;
          if (o != loaded_outer) {
            for (std::int64_t j = 0; j < p.inner; ++j) row_coefficients[static_cast<std::size_t>(j)] = coefficient<Compute>(c, o % p.kept_outer * p.inner + j);
            loaded_outer = o;
          }
          const In* x = in + r * p.inner;
          Out* y = out + r * p.inner;
          if (!flags.impute && !flags.clip) {
            // (the same arithmetic, the coefficients' fields in arrays of their own: the loop vectorizes)
            if (soa.empty() || loaded_soa != o) {
              soa.assign(5 * static_cast<std::size_t>(p.inner), Compute(0));
              for (std::int64_t j = 0; j < p.inner; ++j) {
                const auto& a = row_coefficients[static_cast<std::size_t>(j)];
                soa[j] = a.pre, soa[p.inner + j] = a.center_hi, soa[2 * p.inner + j] = a.center_lo, soa[3 * p.inner + j] = a.scale,
                soa[4 * p.inner + j] = a.offset;
              }
              loaded_soa = o;
            }
            const Compute *pre = soa.data(), *hi = pre + p.inner, *lo = hi + p.inner, *scale = lo + p.inner, *offset = scale + p.inner;
            for (std::int64_t j = 0; j < p.inner; ++j) {
              math::store_as(y + j, (math::scaled_difference(math::to_acc<Compute>(x[j]), pre[j], hi[j]) - lo[j]) * scale[j] + offset[j]);
            }
            continue;
          }
          for (std::int64_t j = 0; j < p.inner; ++j) {
            math::store_as(y + j, math::apply_affine_value(math::to_acc<Compute>(x[j]), row_coefficients[static_cast<std::size_t>(j)], flags));
          }
        }
      });
      break;
    case plan::ApplyKernel::generic:
      parallel_range(g.numel, 1, threads, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) {
          const auto a = coefficient<Compute>(c, plan::kept_index_of(g.kept, i));
          math::store_as(out + i, math::apply_affine_value(math::to_acc<Compute>(in[i]), a, flags));
        }
      });
      break;
  }
}

template <typename In, typename Out>
void lp_rows(const In* in, Out* out, std::int64_t rows, std::int64_t length, LpNorm p, int threads) {
  using Compute = math::compute_type_t<In, Out>;
  parallel_range(rows, length, threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const In* x = in + r * length;
      double acc = 0.0;
      for (std::int64_t j = 0; j < length; ++j) acc = math::lp_accumulate(p, acc, math::to_acc<double>(x[j]));
      const math::ScaleSplit<Compute> scale = math::lp_row_scale<Compute>(p, acc);
      Out* y = out + r * length;
      for (std::int64_t j = 0; j < length; ++j) math::store_as(y + j, (math::to_acc<Compute>(x[j]) * scale.pre) * scale.rest);
    }
  });
}

}  // namespace

Status normalize_lp_rows(const void* in, DType in_dtype, void* out, DType out_dtype, std::int64_t rows, std::int64_t length,
                         LpNorm p, int threads) {
  return math::visit_input_dtype(in_dtype, "normalize_lp", [&](auto in_tag) {
    using In = typename decltype(in_tag)::type;
    return math::visit_output_dtype(out_dtype, "normalize_lp", [&](auto out_tag) {
      using Out = typename decltype(out_tag)::type;
      lp_rows(static_cast<const In*>(in), static_cast<Out*>(out), rows, length, p, threads);
      return Status::success();
    });
  });
}

Status apply_affine(const void* in, DType in_dtype, void* out, DType out_dtype, const plan::CanonicalGeometry& geometry,
                    const AffineCoefficients& coefficients, int threads) {
  if (geometry.pattern == plan::Pattern::empty) return Status::success();
  return math::visit_input_dtype(in_dtype, "apply_affine", [&](auto in_tag) {
    using In = typename decltype(in_tag)::type;
    return math::visit_output_dtype(out_dtype, "apply_affine", [&](auto out_tag) {
      using Out = typename decltype(out_tag)::type;
      run(static_cast<const In*>(in), static_cast<Out*>(out), geometry, coefficients, threads);
      return Status::success();
    });
  });
}

}  // namespace normkit::cpu
