// The Normalizer's state file schema (see normalizer_file.hpp).
#include "io/normalizer_file.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "io/json.hpp"

namespace normkit::io {

namespace {

const char* const kFormat = "normkit-normalizer";
const char* const kCountFields[] = {"count", "nan_count", "posinf_count", "neginf_count", "nonzero_count"};
const char* const kValueFields[] = {"mean", "m2", "min", "max", "abs_sum"};
const char* const kDerivedFields[] = {"center", "scale", "offset", "fill"};
// Sanity bound on the kept slices a state file may declare (2^40 summaries of 80 bytes: 88 TB).
constexpr std::int64_t kMaxKeptNumel = std::int64_t(1) << 40;

std::string json_list(const std::vector<std::int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::string number(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.17g", v);
  return buffer;
}

std::string shape_text(const std::vector<std::int64_t>& shape) { return json_list(shape); }

template <typename T>
SafetensorsTensor make_tensor(const std::string& name, DType dtype, const std::vector<std::int64_t>& shape,
                              const T* values, std::size_t n) {
  SafetensorsTensor t;
  t.name = name;
  t.dtype = dtype;
  t.shape = shape;
  t.data.resize(n * sizeof(T));
  if (n != 0) std::memcpy(t.data.data(), values, t.data.size());
  return t;
}

// Metadata value `text` as JSON of the expected kind.
bool parse_json_text(const std::string& text, JsonValue* v) {
  std::string ignored;
  return parse_json(text, v, &ignored);
}

bool parse_bool_text(const std::string& text, bool* out) {
  JsonValue v;
  if (!parse_json_text(text, &v) || v.kind != JsonValue::Kind::boolean) return false;
  *out = v.boolean;
  return true;
}

bool parse_double_text(const std::string& text, double* out) {
  JsonValue v;
  return parse_json_text(text, &v) && json_to_double(v, out);
}

// A JSON list of at most kMaxDims integers.
bool parse_int_list_text(const std::string& text, std::vector<std::int64_t>* out) {
  JsonValue v;
  if (!parse_json_text(text, &v) || v.kind != JsonValue::Kind::array || v.items.size() > static_cast<std::size_t>(kMaxDims)) {
    return false;
  }
  out->clear();
  for (const JsonValue& item : v.items) {
    std::int64_t i = 0;
    if (!json_to_integer(item, &i).empty()) return false;
    out->push_back(i);
  }
  return true;
}

}  // namespace

Status encode_normalizer_file(const NormalizerFileContents& c, const std::string& version, SafetensorsFile* out) {
  const std::size_t n = c.summaries.size();
  if (c.coefficients.size() != 4 * n) {
    return Status(StatusCode::internal, "normkit::encode_normalizer_file: expected " + std::to_string(4 * n) +
                                            " coefficients, got " + std::to_string(c.coefficients.size()));
  }
  SafetensorsFile file;
  std::vector<std::int64_t> counts[5];
  std::vector<double> values[5], maxabs;
  for (const StatsSummary& x : c.summaries) {
    const std::int64_t cs[5] = {x.count, x.nan_count, x.posinf_count, x.neginf_count, x.nonzero_count};
    const double vs[5] = {x.mean, x.m2, x.min, x.max, x.abs_sum};
    for (int i = 0; i < 5; ++i) {
      counts[i].push_back(cs[i]);
      values[i].push_back(vs[i]);
    }
    maxabs.push_back(std::fmax(std::fabs(x.min), std::fabs(x.max)));
  }
  for (int i = 0; i < 5; ++i) file.tensors.push_back(make_tensor(kCountFields[i], DType::int64, c.kept_shape, counts[i].data(), n));
  for (int i = 0; i < 5; ++i) file.tensors.push_back(make_tensor(kValueFields[i], DType::float64, c.kept_shape, values[i].data(), n));
  file.tensors.push_back(make_tensor("maxabs", DType::float64, c.kept_shape, maxabs.data(), n));
  for (int i = 0; i < 4; ++i) {
    file.tensors.push_back(make_tensor(kDerivedFields[i], DType::float64, c.kept_shape, c.coefficients.data() + i * n, n));
  }
  const NormalizerOptions& o = c.options;
  std::vector<std::int64_t> axes;
  for (int i = 0; i < o.axes.count; ++i) axes.push_back(o.axes.axes[i]);
  file.metadata = {{"format", kFormat},
                   {"normkit_version", version},
                   {"method", method_name(o.method)},
                   {"axes", o.axes.all ? "\"all\"" : json_list(axes)},
                   {"kept_shape", json_list(c.kept_shape)},
                   {"with_mean", o.with_mean ? "true" : "false"},
                   {"with_std", o.with_std ? "true" : "false"},
                   {"zero_variance", o.zero_variance == ZeroVariance::keras ? "keras" : "sklearn"},
                   {"epsilon", number(o.epsilon)},
                   {"feature_range", "[" + number(o.range_min) + ", " + number(o.range_max) + "]"},
                   {"clip", o.clip ? "true" : "false"},
                   {"scale", number(o.scale)},
                   {"offset", number(o.offset)},
                   {"impute_nan", o.impute_nan ? "true" : "false"},
                   {"fitted_dtype", dtype_name(o.fitted_dtype)}};
  *out = std::move(file);
  return Status::success();
}

Status decode_normalizer_file(const SafetensorsFile& file, const std::string& op, const std::string& path,
                              NormalizerFileContents* out) {
  auto bad = [&](const std::string& what) { return Status(StatusCode::bad_file, "normkit: " + op + " '" + path + "': " + what); };
  auto meta = [&](const std::string& key, std::string* value) {
    for (const auto& kv : file.metadata) {
      if (kv.first == key) {
        *value = kv.second;
        return true;
      }
    }
    return false;
  };
  std::string v;
  if (!meta("format", &v) || v != kFormat) return bad("metadata 'format' is not \"normkit-normalizer\"");
  NormalizerOptions o;
  if (!meta("method", &v) || !parse_method(v, &o.method)) return bad("metadata 'method' missing or unknown");
  if (!meta("axes", &v)) return bad("metadata 'axes' missing");
  if (v == "\"all\"") {
    o.axes = ReduceAxes::every();
  } else {
    std::vector<std::int64_t> list;
    if (!parse_int_list_text(v, &list)) return bad("metadata 'axes' is not a list of axes");
    int axes[kMaxDims];
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i] < -kMaxDims || list[i] >= kMaxDims) return bad("metadata 'axes' has an axis out of range");
      axes[i] = static_cast<int>(list[i]);
    }
    o.axes = ReduceAxes::of(axes, static_cast<int>(list.size()));
  }
  std::vector<std::int64_t> kept;
  if (!meta("kept_shape", &v) || !parse_int_list_text(v, &kept)) return bad("metadata 'kept_shape' missing or malformed");
  std::int64_t n = 1;
  for (std::int64_t e : kept) {
    if (e < 0 || (e > 0 && n > kMaxKeptNumel / e)) return bad("metadata 'kept_shape' has a negative or huge extent");
    n *= e;
  }
  const bool ok = meta("with_mean", &v) && parse_bool_text(v, &o.with_mean) && meta("with_std", &v) &&
                  parse_bool_text(v, &o.with_std) && meta("clip", &v) && parse_bool_text(v, &o.clip) &&
                  meta("impute_nan", &v) && parse_bool_text(v, &o.impute_nan) && meta("epsilon", &v) &&
                  parse_double_text(v, &o.epsilon) && meta("scale", &v) && parse_double_text(v, &o.scale) &&
                  meta("offset", &v) && parse_double_text(v, &o.offset) && meta("zero_variance", &v) &&
                  (v == "sklearn" || v == "keras");
  if (!ok) return bad("metadata with_mean/with_std/clip/impute_nan/epsilon/scale/offset/zero_variance missing or malformed");
  o.zero_variance = v == "keras" ? ZeroVariance::keras : ZeroVariance::sklearn;
  // Files of normkit 0.1.0 have no fitted_dtype: their statistics count as float64 (the smallest floor).
  if (meta("fitted_dtype", &v) && !parse_dtype(v, &o.fitted_dtype)) return bad("metadata 'fitted_dtype' is not a dtype name");
  if (!meta("feature_range", &v)) return bad("metadata 'feature_range' missing");
  {
    JsonValue range;
    if (!parse_json_text(v, &range) || range.kind != JsonValue::Kind::array || range.items.size() != 2 ||
        !json_to_double(range.items[0], &o.range_min) || !json_to_double(range.items[1], &o.range_max)) {
      return bad("metadata 'feature_range' malformed");
    }
  }
  // Tensors: each present, of the kept shape and its dtype.
  auto tensor = [&](const char* name, DType dtype, const SafetensorsTensor** t) -> Status {
    *t = file.find(name);
    if (!*t) return bad(std::string("tensor '") + name + "' missing");
    if ((*t)->dtype != dtype) return bad(std::string("tensor '") + name + "' has dtype " + dtype_name((*t)->dtype) + ", expected " + dtype_name(dtype));
    if ((*t)->shape != kept) return bad(std::string("tensor '") + name + "' has shape " + shape_text((*t)->shape) + ", expected " + shape_text(kept));
    return Status::success();
  };
  // Shapes first: the data sizes then match n, and nothing is allocated for a file that lies about n.
  for (const char* name : kCountFields) {
    const SafetensorsTensor* t = nullptr;
    NORMKIT_RETURN_IF_ERROR(tensor(name, DType::int64, &t));
  }
  for (const char* name : kValueFields) {
    const SafetensorsTensor* t = nullptr;
    NORMKIT_RETURN_IF_ERROR(tensor(name, DType::float64, &t));
  }
  for (const char* name : {"maxabs", "center", "scale", "offset", "fill"}) {  // recomputed on load, but checked
    const SafetensorsTensor* t = nullptr;
    NORMKIT_RETURN_IF_ERROR(tensor(name, DType::float64, &t));
  }
  std::vector<StatsSummary> summaries(static_cast<std::size_t>(n));
  for (int i = 0; i < 5; ++i) {
    const SafetensorsTensor* t = file.find(kCountFields[i]);
    for (std::size_t k = 0; k < summaries.size(); ++k) {
      std::int64_t c;
      std::memcpy(&c, t->data.data() + k * 8, 8);
      if (c < 0) return bad(std::string("tensor '") + kCountFields[i] + "' has a negative count");
      std::int64_t* fields[5] = {&summaries[k].count, &summaries[k].nan_count, &summaries[k].posinf_count,
                                 &summaries[k].neginf_count, &summaries[k].nonzero_count};
      *fields[i] = c;
    }
  }
  for (int i = 0; i < 5; ++i) {
    const SafetensorsTensor* t = file.find(kValueFields[i]);
    for (std::size_t k = 0; k < summaries.size(); ++k) {
      double* fields[5] = {&summaries[k].mean, &summaries[k].m2, &summaries[k].min, &summaries[k].max, &summaries[k].abs_sum};
      std::memcpy(fields[i], t->data.data() + k * 8, 8);
    }
  }
  out->options = o;
  out->kept_shape = std::move(kept);
  out->summaries = std::move(summaries);
  out->coefficients.clear();
  return Status::success();
}

}  // namespace normkit::io
