#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "qat_test_util.hpp"
#include "quant/quant_test_util.hpp"
#include "quench/qat/float8_fake_quantize.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/quantize.hpp"

using quench::dtype;
using quench::qparams;
using quench::shape;
using qat_test::hex;

namespace {

/// DequantizeLinear(QuantizeLinear(x)) with the quant layer's ONNX-exact kernels.
std::vector<float> qdq(const std::vector<float>& x, const shape& s, const qparams& p) {
  std::vector<std::uint8_t> q(x.size());
  std::vector<float> y(x.size());
  quench::quantize(quench::const_tensor_view<float>(x.data(), s), p, q.data(), q.size());
  quench::dequantize(q.data(), q.size(), p, quench::tensor_view<float>(y.data(), s));
  return y;
}

template <class Float8>
bool overflows(float r) {
  const float back = static_cast<float>(Float8(r, /*saturate=*/false));
  return !std::isfinite(back);
}

template <class Float8>
void check_type(dtype t) {
  CAPTURE(quench::to_string(t));
  const std::vector<float> x = quench_test::hard_floats(6000, 4.f, 200.f, static_cast<std::uint64_t>(t));
  const shape s{6, 1000};
  for (bool saturate : {true, false}) {
    CAPTURE(saturate);
    std::vector<qparams> ps{qparams::per_tensor(t, 0.37f), qparams::per_axis(t, 0, {1.f, 0.1f, 3.f, 1e-3f, 250.f, 0.5f})};
    for (auto& p : ps) {
      p.saturate = saturate;
      const auto want = qdq(x, s, p);
      for (auto target : quench::supported_simd_targets()) {
        CAPTURE(quench::simd_target_name(target));
        std::vector<float> y(x.size());
        std::vector<std::uint8_t> m(x.size());
        quench::fake_quantize_float8(quench::const_tensor_view<float>(x.data(), s), p, quench::tensor_view<float>(y.data(), s),
                                     quench::tensor_view<std::uint8_t>(m.data(), s), target);
        std::vector<float> y2(x.size());
        quench::fake_quantize_float8(quench::const_tensor_view<float>(x.data(), s), p, quench::tensor_view<float>(y2.data(), s),
                                     target);
        std::size_t bad = 0;
        for (std::size_t i = 0; i < x.size(); ++i) {
          bad += !qat_test::same_bits(y2[i], want[i]);
          const float sc = p.granularity == quench::quant_granularity::per_tensor ? p.scales[0] : p.scales[i / 1000];
          const float r = x[i] / sc;
          const bool want_mask = !std::isnan(r) && !overflows<Float8>(r);
          if (!qat_test::same_bits(y[i], want[i]) || m[i] != (want_mask ? 1 : 0)) {
            if (bad++ < 4) INFO("x=" << hex(x[i]) << " y=" << hex(y[i]) << " want " << hex(want[i]) << " mask " << int(m[i]));
          }
        }
        CHECK(bad == 0);
      }
    }
  }
  // The mask bound: the largest float that converts to a finite value, and the next one overflows.
  const float b = quench::detail::float8_finite_bound<Float8>();
  CHECK(!overflows<Float8>(b));
  CHECK(overflows<Float8>(std::nextafter(b, std::numeric_limits<float>::infinity())));
}

}  // namespace

TEST_CASE("float8 fake quant is the QuantizeLinear -> DequantizeLinear round trip, on every target") {
  check_type<quench::float8e4m3fn>(dtype::float8e4m3fn);
  check_type<quench::float8e5m2>(dtype::float8e5m2);
  check_type<quench::float8e4m3fnuz>(dtype::float8e4m3fnuz);
  check_type<quench::float8e5m2fnuz>(dtype::float8e5m2fnuz);
  CHECK(quench::detail::float8_finite_bound<quench::float8e4m3fn>() == 464.f);
  CHECK(quench::detail::float8_finite_bound<quench::float8e5m2>() == std::nextafter(61440.f, 0.f));
}

TEST_CASE("float8 fake quant: in place, saturation and refusals") {
  std::vector<float> x{500.f, -1000.f, 448.f, 464.f, 465.f, 0.3f, std::numeric_limits<float>::infinity()};
  const shape s{7};
  const auto p = qparams::per_tensor(dtype::float8e4m3fn, 1.f);
  std::vector<std::uint8_t> m(7);
  quench::tensor_view<float> v(x.data(), s);
  quench::fake_quantize_float8(v, p, v, quench::tensor_view<std::uint8_t>(m.data(), s));
  CHECK(x[0] == 448.f);
  CHECK(x[1] == -448.f);
  CHECK(x[3] == 448.f);
  CHECK(x[4] == 448.f);
  CHECK(x[5] == 0.3125f);
  CHECK(x[6] == 448.f);
  CHECK(m == std::vector<std::uint8_t>{0, 0, 1, 1, 0, 1, 0});
  std::vector<float> y(7);
  CHECK_THROWS_AS(quench::fake_quantize_float8(v, qparams::per_tensor(dtype::int8, 1.f), quench::tensor_view<float>(y.data(), s)),
                  quench::error);
  CHECK_THROWS_AS(quench::fake_quantize_float8(v, qparams::per_tensor(dtype::float8e5m2, 0.f), quench::tensor_view<float>(y.data(), s)),
                  quench::error);
  CHECK_THROWS_AS(quench::fake_quantize_float8(v, p, quench::tensor_view<float>(y.data(), {1, 7})), quench::error);
}
