// QuantizeLinear / DequantizeLinear against ONNX Runtime 1.30 (onnxruntime-node, CPU), for what
// the libonnx-testdata node tests (onnx 1.12) cannot cover: int16/uint16, int4/uint4, the four
// float8 types with and without saturate, blocked layouts, int32 and float16 operands.
//
// The data comes from a ctest fixture (tests/quant/ort_reference.cmake): tests/quant/
// make_ort_reference.py builds one model per case with its inputs, tests/ort/run_model.js runs
// them in ONNX Runtime. The ctest entry `quant_ort` points QUENCH_ORT_REFERENCE_DIR at the result;
// without that variable (the plain `onnx` entry) this suite reports itself skipped.
//
// Comparison is bit for bit. Where ONNX Runtime deviates from the ONNX spec, quench follows the
// spec; those elements are not compared with ORT but checked against the spec, and their number
// per case must equal the generator's count (`expected_deviations`):
//  * fnuz_saturate_inf: FNUZ float8 with saturate=1 and x / scale = +-Inf. Spec
//    (docs/technical/float8.md): NaN. ORT: +-max (checked).
//  * e5m2_rounding_overflow: float8e5m2 with saturate=0 and 61440 <= |x / scale| < 65536, i.e.
//    finite values that round up past the largest finite 57344. Spec and the onnx reference
//    (onnx.helper.float32_to_float8e5m2): +-Inf. ORT: NaN (checked).
//  * ort_int32_overflow: integer outputs on ORT's scalar QuantizeLinear paths (float16 input;
//    blocked along an axis other than the last; int4/uint4 per-axis or blocked), where ORT
//    converts x / scale to int32 before saturating. A quotient that is NaN, +-Inf or beyond
//    +-2^31 makes that conversion undefined (x86 gives INT_MIN); ORT then returns qmin or qmax
//    depending on the zero point's sign and the element's position. quench saturates (qmin for
//    NaN, as ORT's vectorised paths do). The number of these elements where ORT actually
//    differed is reported.
// And two read-back limits of the JS API:
//  * float8 results come back through Cast(float8 -> float): every non-NaN code maps to a
//    distinct float, so non-NaN results compare exactly; for NaN only "is NaN" is compared
//    (e5m2's NaN codes are indistinguishable after the Cast).
//  * int4/uint4 results come back through Cast to int8/uint8 (the binding crashes on int4
//    outputs); the nibble order is checked by the DequantizeLinear cases, whose packed inputs
//    ORT reads.
//  * DequantizeLinear of a float8 NaN: quench gives +NaN for the FNUZ NaN code 0x80, ORT -NaN;
//    NaN outputs compare as NaN regardless of sign.

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "quench/numeric/float8.hpp"
#include "quench/numeric/int4.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/qparams.hpp"
#include "quench/quant/quantize.hpp"

using nlohmann::json;
using quench::dtype;

namespace {

const char* reference_dir() { return std::getenv("QUENCH_ORT_REFERENCE_DIR"); }

std::vector<char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot open " << path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

json read_json(const std::string& path) {
  const auto bytes = read_file(path);
  return json::parse(bytes.begin(), bytes.end());
}

/// A raw operand written by make_ort_reference.py: dtype (ONNX number), dims, file.
quench::tensor load_operand(const std::string& base, const json& j) {
  std::vector<std::int64_t> dims = j.at("dims").get<std::vector<std::int64_t>>();
  const dtype t = quench::dtype_from_onnx(j.at("onnx_type").get<int>());
  quench::tensor out(t, quench::shape(dims));
  const auto bytes = read_file(base + "/" + j.at("file").get<std::string>());
  REQUIRE(bytes.size() == out.nbytes());
  if (!bytes.empty()) std::memcpy(out.bytes(), bytes.data(), bytes.size());
  return out;
}

std::uint32_t bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

float float8_value(dtype t, std::uint8_t b) {
  switch (t) {
    case dtype::float8e4m3fn: return quench::detail::float8_bits_to_float<quench::detail::e4m3fn_format>(b);
    case dtype::float8e4m3fnuz: return quench::detail::float8_bits_to_float<quench::detail::e4m3fnuz_format>(b);
    case dtype::float8e5m2: return quench::detail::float8_bits_to_float<quench::detail::e5m2_format>(b);
    default: return quench::detail::float8_bits_to_float<quench::detail::e5m2fnuz_format>(b);
  }
}

float float8_max(dtype t) {
  switch (t) {
    case dtype::float8e4m3fn: return 448.f;
    case dtype::float8e4m3fnuz: return 240.f;
    default: return 57344.f;
  }
}

/// The element-wise scale of a layout (as ONNX's reference `reshape_input`), for the deviation
/// predicates.
std::vector<float> element_scales(const quench::qparams& p, const quench::shape& s) {
  std::vector<float> out(s.numel());
  const auto plan = quench::detail::make_plan(p, s);
  quench::detail::for_each_run(
      plan,
      [&](std::size_t off, std::size_t len, std::size_t k) {
        for (std::size_t j = 0; j < len; ++j) out[off + j] = p.scales[k];
      },
      [&](std::size_t off, std::size_t len, std::size_t k) {
        for (std::size_t j = 0; j < len; ++j) out[off + j] = p.scales[k + j];
      });
  return out;
}

float input_value(const quench::tensor& x, std::size_t i) {
  if (x.dtype() == dtype::float16) return static_cast<float>(x.view<quench::float16>()[i]);
  return x.view<float>()[i];
}

struct totals {
  std::size_t cases = 0, elements = 0;
  std::map<std::string, std::size_t> excluded;  ///< per deviation class: elements not compared
  std::size_t ort_int32_disagreed = 0;          ///< of the int32-overflow elements, where ORT differed
};

struct mismatch_report {
  std::size_t count = 0;
  std::string first;
  void add(const std::string& what) {
    if (count++ == 0) first = what;
  }
};

/// ONNX Runtime 1.30's QuantizeLinear paths that convert x / scale to int32 before saturating
/// (the same rule as ort_scalar_path in make_ort_reference.py).
bool ort_scalar_path(dtype type, dtype x_type, const quench::qparams& p, const quench::shape& s) {
  if (x_type == dtype::float16) return true;
  if (p.granularity == quench::quant_granularity::per_tensor) return false;
  const auto r = static_cast<std::int64_t>(s.rank());
  const bool last = (p.axis < 0 ? p.axis + r : p.axis) == r - 1;
  if (p.granularity == quench::quant_granularity::blocked && !last) return true;
  return quench::is_sub_byte(type);
}

void compare_quantize(const json& c, const quench::tensor& x, const quench::qparams& p, const quench::tensor& ort,
                      totals& tot) {
  const std::string name = c.at("name");
  const quench::tensor y = quench::quantize(x, p);
  const dtype t = p.type;
  const std::size_t n = x.size();
  const auto es = element_scales(p, x.shape());
  const auto ez = [&] {
    quench::qparams zp_as_scale = p;
    zp_as_scale.scales.assign(p.scales.size(), 0.f);
    for (std::size_t i = 0; i < p.scales.size(); ++i) zp_as_scale.scales[i] = static_cast<float>(p.zero_point(i));
    return element_scales(zp_as_scale, x.shape());
  }();
  const bool scalar_path = !quench::is_float8(t) && ort_scalar_path(t, x.dtype(), p, x.shape());
  const float fmax = quench::is_float8(t) ? float8_max(t) : 0.f;
  mismatch_report bad;
  std::map<std::string, std::size_t> excluded;
  const auto* yb = reinterpret_cast<const std::uint8_t*>(y.bytes());
  for (std::size_t i = 0; i < n; ++i) {
    const float xv = input_value(x, i);
    const float q = xv / es[i];
    const std::string where = "element " + std::to_string(i) + " x=" + hex32(bits(xv)) + " x/scale=" + hex32(bits(q));
    if (quench::is_float8(t)) {
      const float want = ort.view<float>()[i];
      const float got = float8_value(t, yb[i]);
      const bool fnuz = t == dtype::float8e4m3fnuz || t == dtype::float8e5m2fnuz;
      if (fnuz && p.saturate && std::isinf(q)) {
        // Spec: NaN. ORT: +-max.
        ++excluded["fnuz_saturate_inf"];
        if (!std::isnan(got) || std::fabs(want) != fmax)
          bad.add(where + ": FNUZ saturate Inf, quench " + hex32(bits(got)) + " ORT " + hex32(bits(want)));
        continue;
      }
      if (t == dtype::float8e5m2 && !p.saturate && std::fabs(q) >= 61440.f && std::fabs(q) < 65536.f) {
        // Spec and onnx reference: +-Inf. ORT: NaN.
        ++excluded["e5m2_rounding_overflow"];
        if (!std::isinf(got) || std::signbit(got) != std::signbit(q) || !std::isnan(want))
          bad.add(where + ": e5m2 rounding overflow, quench " + hex32(bits(got)) + " ORT " + hex32(bits(want)));
        continue;
      }
      if (std::isnan(want) ? !std::isnan(got) : bits(got) != bits(want))
        bad.add(where + ": quench " + hex32(bits(got)) + " ORT " + hex32(bits(want)));
      continue;
    }
    std::int32_t got, want;
    switch (t) {
      case dtype::int8: got = y.view<std::int8_t>()[i]; want = ort.view<std::int8_t>()[i]; break;
      case dtype::uint8: got = y.view<std::uint8_t>()[i]; want = ort.view<std::uint8_t>()[i]; break;
      case dtype::int16: got = y.view<std::int16_t>()[i]; want = ort.view<std::int16_t>()[i]; break;
      case dtype::uint16: got = y.view<std::uint16_t>()[i]; want = ort.view<std::uint16_t>()[i]; break;
      case dtype::int4: got = quench::get_int4(yb, i); want = ort.view<std::int8_t>()[i]; break;
      default: got = quench::get_uint4(yb, i); want = ort.view<std::uint8_t>()[i]; break;
    }
    const auto range = quench::full_range(t);
    const bool big = !std::isfinite(q) || std::fabs(std::nearbyint(q)) >= 2147483648.f;
    if (scalar_path && big) {
      // ORT converts an out-of-int32 quotient to int32 (undefined in C++): not compared. quench
      // must give the spec's saturated value (qmin for NaN, quench's documented choice).
      ++excluded["ort_int32_overflow"];
      if (got != want) ++tot.ort_int32_disagreed;
      const std::int32_t spec = std::isnan(q) ? range.min : (q > 0 ? range.max : range.min);
      if (got != spec) bad.add(where + ": quench " + std::to_string(got) + " spec " + std::to_string(spec));
      continue;
    }
    if (got != want) bad.add(where + ": quench " + std::to_string(got) + " ORT " + std::to_string(want) +
                             " zp " + std::to_string(static_cast<int>(ez[i])));
  }
  INFO(name, ": ", bad.count, " mismatches, first: ", bad.first);
  CHECK(bad.count == 0);
  const json& expected = c.at("expected_deviations");
  for (const auto& kv : excluded) {
    CAPTURE(kv.first);
    CHECK(kv.second == (expected.contains(kv.first) ? expected.at(kv.first).get<std::size_t>() : 0u));
    tot.excluded[kv.first] += kv.second;
  }
  for (const auto& kv : expected.items()) {
    CAPTURE(kv.key());
    CHECK(excluded[kv.key()] == kv.value().get<std::size_t>());
  }
  tot.elements += n - [&] {
    std::size_t e = 0;
    for (const auto& kv : excluded) e += kv.second;
    return e;
  }();
}

void compare_dequantize(const json& c, const quench::tensor& x, const quench::qparams& p, dtype out_type,
                        const quench::tensor& ort, totals& tot) {
  const std::string name = c.at("name");
  const quench::tensor y = quench::dequantize(x, p, out_type);
  REQUIRE(y.nbytes() == ort.nbytes());
  mismatch_report bad;
  for (std::size_t i = 0; i < y.size(); ++i) {
    std::uint32_t got, want;
    bool got_nan, want_nan;
    if (out_type == dtype::float16) {
      got = y.view<quench::float16>()[i].bits();
      want = ort.view<quench::float16>()[i].bits();
      got_nan = (got & 0x7fff) > 0x7c00;
      want_nan = (want & 0x7fff) > 0x7c00;
    } else {
      got = bits(y.view<float>()[i]);
      want = bits(ort.view<float>()[i]);
      got_nan = (got & 0x7fffffff) > 0x7f800000;
      want_nan = (want & 0x7fffffff) > 0x7f800000;
    }
    if (got == want || (got_nan && want_nan)) continue;
    bad.add("element " + std::to_string(i) + ": quench " + hex32(got) + " ORT " + hex32(want));
  }
  INFO(name, ": ", bad.count, " mismatches, first: ", bad.first);
  CHECK(bad.count == 0);
  tot.elements += y.size();
}

}  // namespace

TEST_SUITE("quant_ort") {
  TEST_CASE("QuantizeLinear / DequantizeLinear match ONNX Runtime bit for bit") {
    const char* dir = reference_dir();
    if (!dir) {
      MESSAGE("QUENCH_ORT_REFERENCE_DIR is not set: run the ctest entry quant_ort for this comparison");
      return;
    }
    const std::string base = dir;
    const json manifest = read_json(base + "/manifest.json");
    const json results = read_json(base + "/ort_results.json");
    totals tot;
    std::map<std::string, int> per_type;
    for (const json& c : manifest.at("cases")) {
      const std::string name = c.at("name");
      CAPTURE(name);
      const json& r = results.at("results").at(name);
      if (r.contains("error")) {
        FAIL_CHECK("ONNX Runtime could not run ", name, ": ", r.at("error").get<std::string>());
        continue;
      }
      const quench::tensor x = load_operand(base, c.at("x"));
      const quench::tensor scale = load_operand(base, c.at("scale"));
      quench::tensor zp;
      const bool has_zp = !c.at("zero_point").is_null();
      if (has_zp) zp = load_operand(base, c.at("zero_point"));
      const dtype type = quench::dtype_from_onnx(c.at("onnx_type").get<int>());
      const std::int64_t axis = c.at("axis").is_null() ? 1 : c.at("axis").get<std::int64_t>();
      const std::int64_t block = c.at("block_size").is_null() ? 0 : c.at("block_size").get<std::int64_t>();
      const bool saturate = c.at("saturate").is_null() ? true : c.at("saturate").get<int>() != 0;
      const quench::qparams p = quench::qparams_from_tensors(scale, has_zp ? &zp : nullptr, type, axis, block, saturate);

      const json& out = r.at("outputs").at(0);
      quench::tensor ort(quench::dtype_from_name(out.at("dtype").get<std::string>()),
                         quench::shape(out.at("dims").get<std::vector<std::int64_t>>()));
      const auto ort_bytes = read_file(base + "/" + out.at("file").get<std::string>());
      REQUIRE(ort_bytes.size() == ort.nbytes());
      if (!ort_bytes.empty()) std::memcpy(ort.bytes(), ort_bytes.data(), ort_bytes.size());
      REQUIRE(ort.shape() == x.shape());

      if (c.at("op") == "QuantizeLinear")
        compare_quantize(c, x, p, ort, tot);
      else
        compare_dequantize(c, x, p, scale.dtype(), ort, tot);
      ++tot.cases;
      ++per_type[c.at("op").get<std::string>() + " " + quench::to_string(type)];
    }
    const std::size_t expected_cases = manifest.at("cases").size();
    CHECK(tot.cases == expected_cases);
    // Every deviation class the header lists must actually have been exercised, so that a change
    // in either implementation shows up here.
    CHECK(tot.excluded["fnuz_saturate_inf"] > 0);
    CHECK(tot.excluded["e5m2_rounding_overflow"] > 0);
    CHECK(tot.excluded["ort_int32_overflow"] > 0);
    CHECK(tot.ort_int32_disagreed > 0);
    std::string summary;
    for (auto& kv : per_type) summary += " " + kv.first + ":" + std::to_string(kv.second);
    MESSAGE("ORT ", results.at("onnxruntime").get<std::string>(), ": ", tot.cases, " cases, ", tot.elements,
            " elements bit-identical; not compared (spec checked instead): ", tot.excluded["fnuz_saturate_inf"],
            " FNUZ saturate Inf, ", tot.excluded["e5m2_rounding_overflow"], " e5m2 rounding overflow, ",
            tot.excluded["ort_int32_overflow"], " int32-overflow quotients on ORT's scalar paths (ORT differed on ",
            tot.ort_int32_disagreed, ");", summary);
  }
}
