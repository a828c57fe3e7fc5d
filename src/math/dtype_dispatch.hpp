// Lifting a runtime input dtype to its storage type, once per call, without macro ladders.
#pragma once

#include <string>
#include <type_traits>

#include "math/element_types.hpp"
#include "normkit/status.hpp"

namespace normkit::math {

template <typename T>
struct type_tag {
  using type = T;
};

// Calls f(type_tag<T>{}) with T the storage type of `dtype`; f returns a Status. No default case:
// -Werror=switch flags a dtype added to the enum but not here.
template <typename F>
Status visit_input_dtype(DType dtype, const std::string& operation, F&& f) {
  switch (dtype) {
    case DType::float32: return f(type_tag<float>{});
    case DType::float64: return f(type_tag<double>{});
    case DType::float16: return f(type_tag<float16_bits>{});
    case DType::bfloat16: return f(type_tag<bfloat16_bits>{});
    case DType::uint8: return f(type_tag<std::uint8_t>{});
    case DType::int64: break;
  }
  return argument_error(StatusCode::unsupported_dtype, operation, "input.dtype",
                        "one of float32, float64, float16, bfloat16, uint8", dtype_name(dtype));
}

// Same for the float dtypes transforms write (float32, float64, float16, bfloat16).
template <typename F>
Status visit_output_dtype(DType dtype, const std::string& operation, F&& f) {
  switch (dtype) {
    case DType::float32: return f(type_tag<float>{});
    case DType::float64: return f(type_tag<double>{});
    case DType::float16: return f(type_tag<float16_bits>{});
    case DType::bfloat16: return f(type_tag<bfloat16_bits>{});
    case DType::uint8:
    case DType::int64: break;
  }
  return argument_error(StatusCode::unsupported_dtype, operation, "out.dtype", "one of float32, float64, float16, bfloat16",
                        dtype_name(dtype));
}

// Float for 8/16/32-bit data, double when either side is float64.
template <typename In, typename Out>
using compute_type_t = std::conditional_t<std::is_same_v<In, double> || std::is_same_v<Out, double>, double, float>;

}  // namespace normkit::math

namespace normkit::math {

// The dtypes of a layer call: f(type_tag<X>{}, type_tag<Param>{}) with X the storage type of float32,
// float16 or bfloat16 activations and Param float or X (the parameters' dtype).
template <typename F>
Status visit_layer_dtypes(DType x, DType param, const std::string& operation, F&& f) {
  auto with_x = [&](auto x_tag) -> Status {
    using X = typename decltype(x_tag)::type;
    if (param == DType::float32) return f(x_tag, type_tag<float>{});
    if (param == x) return f(x_tag, type_tag<X>{});
    return argument_error(StatusCode::unsupported_dtype, operation, "gamma.dtype",
                          std::string("float32 or x's dtype ") + dtype_name(x), dtype_name(param));
  };
  switch (x) {
    case DType::float32: return with_x(type_tag<float>{});
    case DType::float16: return with_x(type_tag<float16_bits>{});
    case DType::bfloat16: return with_x(type_tag<bfloat16_bits>{});
    case DType::float64:
    case DType::uint8:
    case DType::int64: break;
  }
  return argument_error(StatusCode::unsupported_dtype, operation, "x.dtype", "one of float32, float16, bfloat16", dtype_name(x));
}

}  // namespace normkit::math

namespace normkit::math {

// The dtypes of an image normalize call: f(type_tag<In>{}, type_tag<Out>{}) with In uint8, float16, bfloat16 or
// float32 and Out float32, float16 or bfloat16 (float64 on either side is refused here, once for both engines).
template <typename F>
Status visit_image_dtypes(DType in, DType out, const std::string& operation, F&& f) {
  return visit_input_dtype(in, operation, [&](auto in_tag) -> Status {
    return visit_output_dtype(out, operation, [&](auto out_tag) -> Status {
      using In = typename std::decay_t<decltype(in_tag)>::type;
      using Out = typename std::decay_t<decltype(out_tag)>::type;
      if constexpr (std::is_same_v<In, double> || std::is_same_v<Out, double>) {
        return argument_error(StatusCode::unsupported_dtype, operation, std::is_same_v<In, double> ? "x.dtype" : "y.dtype",
                              "not float64 (images: uint8, float16, bfloat16, float32 in; float32, float16, bfloat16 out)", "float64");
      } else {
        return f(in_tag, out_tag);
      }
    });
  });
}

}  // namespace normkit::math
