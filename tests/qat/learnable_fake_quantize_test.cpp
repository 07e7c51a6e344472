#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "qat_test_util.hpp"
#include "quant/quant_test_util.hpp"
#include "quench/qat/fake_quantize.hpp"
#include "quench/qat/learnable_fake_quantize.hpp"

using quench::learnable_fake_quant_options;
using quench::shape;
using quench::simd_target;
using qat_test::hex;
using qat_test::same_bits;

namespace {

struct lfq_grads {
  std::vector<float> dx, dscale, dzp;
};

lfq_grads run_backward(const std::vector<float>& dy, const std::vector<float>& x, const shape& s,
                       const std::vector<float>& scale, const std::vector<float>& zp, const learnable_fake_quant_options& o,
                       simd_target t = quench::best_simd_target()) {
  lfq_grads g{std::vector<float>(x.size()), std::vector<float>(scale.size()), std::vector<float>(scale.size())};
  const shape ps{static_cast<std::int64_t>(scale.size())};
  quench::fake_quantize_learnable_backward(quench::const_tensor_view<float>(dy.data(), s),
                                           quench::const_tensor_view<float>(x.data(), s),
                                           quench::const_tensor_view<float>(scale.data(), ps),
                                           quench::const_tensor_view<float>(zp.data(), ps), o,
                                           {{g.dx.data(), s}, {g.dscale.data(), ps}, {g.dzp.data(), ps}}, t);
  return g;
}

std::vector<float> run_forward(const std::vector<float>& x, const shape& s, const std::vector<float>& scale,
                               const std::vector<float>& zp, const learnable_fake_quant_options& o,
                               simd_target t = quench::best_simd_target()) {
  std::vector<float> y(x.size());
  const shape ps{static_cast<std::int64_t>(scale.size())};
  quench::fake_quantize_learnable(quench::const_tensor_view<float>(x.data(), s),
                                  quench::const_tensor_view<float>(scale.data(), ps),
                                  quench::const_tensor_view<float>(zp.data(), ps), o,
                                  quench::tensor_view<float>(y.data(), s), t);
  return y;
}

learnable_fake_quant_options per_tensor_opt(int qmin, int qmax, float gf = 1.f) {
  learnable_fake_quant_options o;
  o.range = {qmin, qmax};
  o.grad_factor = gf;
  return o;
}

}  // namespace

TEST_CASE("the learnable forward rounds the zero point half to even; the per-tensor backward rounds half up") {
  const auto o = per_tensor_opt(-128, 127);
  // zero point 2.5: forward uses 2 (ties to even), the per-tensor backward trunc(2.5 + 0.5) = 3.
  const std::vector<float> x{0.f, 10.f};
  CHECK(run_forward(x, {2}, {1.f}, {2.5f}, o) == std::vector<float>{0.f, 10.f});
  CHECK(run_forward({-125.f}, {1}, {1.f}, {-2.5f}, o) == std::vector<float>{-125.f});  // zp -2: q = -127
  CHECK(run_forward({-127.f}, {1}, {1.f}, {-3.5f}, o) == std::vector<float>{-124.f});  // zp -4: q = -131 -> -128
  // Backward, per tensor: zp -2.7 -> trunc(-2.2) = -2, so x = 126.4 (q = round(126.4 - 2) = 124) is in
  // range, x = 129.6 (q = 128) is not. A forward zero point of -3 would put 129.6 (q = 127) in range.
  auto g = run_backward({1.f, 1.f}, {126.4f, 129.6f}, {2}, {1.f}, {-2.7f}, o);
  CHECK(g.dx == std::vector<float>{1.f, 0.f});
  // Per channel, the backward zero point is the forward one: round_half_even(-2.7) = -3.
  learnable_fake_quant_options pc = o;
  pc.granularity = quench::quant_granularity::per_axis;
  pc.axis = 0;
  g = run_backward({1.f, 1.f}, {126.4f, 129.6f}, {2}, {1.f, 1.f}, {-2.7f, -2.7f}, pc);
  CHECK(g.dx == std::vector<float>{1.f, 1.f});
  // Out-of-range zero points are clamped in both passes.
  CHECK(run_forward({5.f}, {1}, {1.f}, {300.f}, per_tensor_opt(0, 255)) == std::vector<float>{0.f});
  CHECK(run_forward({-5.f}, {1}, {1.f}, {-std::numeric_limits<float>::infinity()}, per_tensor_opt(-8, 7)) ==
        std::vector<float>{0.f});
}

TEST_CASE("learnable gradients follow torch's three cases, zero point added before rounding in one FMA") {
  const auto o = per_tensor_opt(0, 15, 0.5f);
  const float s = 0.25f;
  // zp 3: q = round(x / s + 3). x = 1.1 -> q = 7.4 -> 7 in range; x = -2 -> q = -5 below; x = 4 -> q = 19 above.
  const std::vector<float> x{1.1f, -2.f, 4.f, std::numeric_limits<float>::quiet_NaN()};
  const std::vector<float> dy{2.f, 3.f, -1.f, 1.f};
  const auto g = run_backward(dy, x, {4}, {s}, {3.f}, o);
  CHECK(g.dx[0] == 2.f);
  CHECK(g.dx[1] == 0.f);
  CHECK(g.dx[2] == 0.f);  // -1 * 0 = -0
  CHECK(std::signbit(g.dx[2]));
  CHECK(g.dx[3] == 0.f);
  const float t_in = 2.f * std::fma(7.f - 3.f, s, -1.1f) * (1.f / s) * 0.5f;  // dy * (xfq - x) / s * g
  const float t_below = 3.f * (0.f - 3.f) * 0.5f;                             // dy * (qmin - zp) * g
  const float t_above = -1.f * (15.f - 3.f) * 0.5f;                           // dy * (qmax - zp) * g
  const float t_nan = 1.f * (0.f - 3.f) * 0.5f;                               // NaN takes the qmin branch
  CHECK(g.dscale[0] == static_cast<float>(static_cast<double>(t_in) + t_below + t_above + t_nan));
  const float z_out = -(3.f * s * 0.5f) - (-1.f * s * 0.5f) - (1.f * s * 0.5f);  // -dy * s * g outside
  CHECK(g.dzp[0] == z_out);

  // +Inf is above quant_max (torch 1.13's int64 conversion takes the quant_min branch instead).
  const auto gi = run_backward({2.f}, {std::numeric_limits<float>::infinity()}, {1}, {s}, {3.f}, o);
  CHECK(gi.dx[0] == 0.f);
  CHECK(gi.dscale[0] == 2.f * (15.f - 3.f) * 0.5f);
  CHECK(gi.dzp[0] == -2.f * s * 0.5f);

  // Find a tie where fma(x, 1/s, zp) and round(x * (1/s)) + zp differ, and check torch's (FMA) choice.
  const float sc = 0.1f, inv = 1.f / sc;
  bool found = false;
  for (int k = 0; k <= 100 && !found; ++k) {  // q >= 100: the zero point stays inside the range below
    const std::uint32_t mid = qat_test::to_bits((static_cast<float>(k) + 0.5f) * sc);
    for (std::uint32_t u = mid - 2; u <= mid + 2 && !found; ++u) {
      const float v = qat_test::from_bits(u);
      const float fused = std::nearbyint(std::fma(v, inv, 100.f));
      const float split = std::nearbyint(v * inv) + 100.f;
      if (fused == split) continue;
      found = true;
      // Put the range edge between the two: only the fused q is in range.
      learnable_fake_quant_options e = per_tensor_opt(-200, static_cast<int>(std::min(fused, split)));
      const auto gg = run_backward({1.f}, {v}, {1}, {sc}, {100.f}, e);
      CAPTURE(hex(v));
      CHECK(gg.dx[0] == (fused <= std::min(fused, split) ? 1.f : 0.f));
    }
  }
  CHECK(found);
}

TEST_CASE("every SIMD target gives the scalar path's learnable gradients bit for bit") {
  const std::vector<float> xs = quench_test::hard_floats(50000, 0.05f, 150.f, 77);
  std::vector<float> dys(xs.size());
  quench_test::rng r(5);
  for (auto& v : dys) v = r.uniform(-1.f, 1.f);
  // hard_floats includes +Inf, which the torch comparison leaves out: every target must agree on it.
  auto check = [&](const shape& s, const std::vector<float>& scale, const std::vector<float>& zp,
                   const learnable_fake_quant_options& o, std::size_t offset) {
    const std::size_t n = s.numel();
    const std::vector<float> x(xs.begin() + static_cast<std::ptrdiff_t>(offset),
                               xs.begin() + static_cast<std::ptrdiff_t>(offset + n));
    const std::vector<float> dy(dys.begin(), dys.begin() + static_cast<std::ptrdiff_t>(n));
    const auto ref = run_backward(dy, x, s, scale, zp, o, simd_target::scalar);
    const auto yref = run_forward(x, s, scale, zp, o, simd_target::scalar);
    for (auto t : quench::supported_simd_targets()) {
      CAPTURE(quench::simd_target_name(t));
      CAPTURE(n);
      const auto g = run_backward(dy, x, s, scale, zp, o, t);
      const auto y = run_forward(x, s, scale, zp, o, t);
      for (std::size_t i = 0; i < n; ++i) {
        if (!same_bits(g.dx[i], ref.dx[i]) || !same_bits(y[i], yref[i])) {
          INFO("element ", i, " x=", hex(x[i]), " dx ", hex(g.dx[i]), " want ", hex(ref.dx[i]));
          CHECK(false);
          return;
        }
      }
      for (std::size_t c = 0; c < scale.size(); ++c) {
        CAPTURE(c);
        CHECK(same_bits(g.dscale[c], ref.dscale[c]));
        CHECK(same_bits(g.dzp[c], ref.dzp[c]));
      }
    }
  };
  for (std::size_t n = 0; n <= 100; ++n) check({static_cast<std::int64_t>(n)}, {0.05f}, {1.6f}, per_tensor_opt(-8, 7, 0.3f), n % 5);
  check({40000}, {0.05f}, {-3.2f}, per_tensor_opt(-128, 127, 0.01f), 3);
  for (std::int64_t axis = 0; axis < 3; ++axis)
    for (std::int64_t c : {1, 5, 16, 33}) {
      std::vector<std::int64_t> dims{3, 7, 9};
      dims[static_cast<std::size_t>(axis)] = c;
      const shape s(dims);
      std::vector<float> scale(static_cast<std::size_t>(c)), zp(static_cast<std::size_t>(c));
      for (std::size_t k = 0; k < scale.size(); ++k) {
        scale[k] = 0.01f + 0.013f * static_cast<float>(k);
        zp[k] = -4.5f + static_cast<float>(k);
      }
      learnable_fake_quant_options o = per_tensor_opt(-128, 127, 0.7f);
      o.granularity = quench::quant_granularity::per_axis;
      o.axis = axis;
      check(s, scale, zp, o, static_cast<std::size_t>(c));
    }
}

TEST_CASE("learnable ops refuse what torch refuses, and bad scales") {
  std::vector<float> x(6), y(6), s1{1.f}, z1{0.f}, ds(1), dz(1);
  const shape s{2, 3}, one{1};
  auto fwd = [&](const learnable_fake_quant_options& o, const std::vector<float>& sc, const std::vector<float>& zp,
                 const shape& ps) -> quench::errc {
    try {
      quench::fake_quantize_learnable(quench::const_tensor_view<float>(x.data(), s),
                                      quench::const_tensor_view<float>(sc.data(), ps),
                                      quench::const_tensor_view<float>(zp.data(), ps), o,
                                      quench::tensor_view<float>(y.data(), s));
    } catch (const quench::error& e) {
      MESSAGE(std::string(e.what()));
      return e.code();
    }
    return quench::errc{};
  };
  CHECK(fwd(per_tensor_opt(1, 255), s1, z1, one) == quench::errc::invalid_argument);    // range without 0
  CHECK(fwd(per_tensor_opt(-10, -1), s1, z1, one) == quench::errc::invalid_argument);
  CHECK(fwd(per_tensor_opt(5, 0), s1, z1, one) == quench::errc::invalid_argument);
  CHECK(fwd(per_tensor_opt(0, 255), {0.f}, z1, one) == quench::errc::invalid_value);
  CHECK(fwd(per_tensor_opt(0, 255), {-0.5f}, z1, one) == quench::errc::invalid_value);
  CHECK(fwd(per_tensor_opt(0, 255), {std::numeric_limits<float>::quiet_NaN()}, z1, one) == quench::errc::invalid_value);
  CHECK(fwd(per_tensor_opt(0, 255), s1, {std::numeric_limits<float>::quiet_NaN()}, one) == quench::errc::invalid_value);
  CHECK(fwd(per_tensor_opt(0, 255), {1.f, 1.f}, {0.f, 0.f}, {2}) == quench::errc::shape_mismatch);
  learnable_fake_quant_options pc = per_tensor_opt(0, 255);
  pc.granularity = quench::quant_granularity::per_axis;
  pc.axis = 1;
  CHECK(fwd(pc, {1.f, 1.f}, {0.f, 0.f}, {2}) == quench::errc::shape_mismatch);
  CHECK(fwd(pc, {1.f, 1.f, 1.f}, {0.f, 0.f, 0.f}, {3}) == quench::errc{});
  pc.axis = 2;
  CHECK(fwd(pc, {1.f, 1.f, 1.f}, {0.f, 0.f, 0.f}, {3}) == quench::errc::out_of_range);
  pc.granularity = quench::quant_granularity::blocked;
  CHECK(fwd(pc, {1.f, 1.f, 1.f}, {0.f, 0.f, 0.f}, {3}) == quench::errc::invalid_argument);

  const auto o = per_tensor_opt(0, 255);
  CHECK_THROWS_AS(quench::fake_quantize_learnable_backward(
                      quench::const_tensor_view<float>(x.data(), s), quench::const_tensor_view<float>(x.data(), s),
                      quench::const_tensor_view<float>(s1.data(), one), quench::const_tensor_view<float>(z1.data(), one),
                      o, {{y.data(), s}, {ds.data(), one}, {dz.data(), {1, 1}}}),
                  quench::error);
  CHECK_THROWS_AS(quench::fake_quantize_learnable_backward(
                      quench::const_tensor_view<float>(x.data(), {6}), quench::const_tensor_view<float>(x.data(), s),
                      quench::const_tensor_view<float>(s1.data(), one), quench::const_tensor_view<float>(z1.data(), one),
                      o, {{y.data(), s}, {ds.data(), one}, {dz.data(), one}}),
                  quench::error);
  // An empty input: zero parameter gradients.
  ds[0] = dz[0] = 5.f;
  quench::fake_quantize_learnable_backward(quench::const_tensor_view<float>(x.data(), {0, 3}),
                                           quench::const_tensor_view<float>(x.data(), {0, 3}),
                                           quench::const_tensor_view<float>(s1.data(), one),
                                           quench::const_tensor_view<float>(z1.data(), one), o,
                                           {{y.data(), {0, 3}}, {ds.data(), one}, {dz.data(), one}});
  CHECK(ds[0] == 0.f);
  CHECK(dz[0] == 0.f);

  CHECK(quench::lsq_grad_factor(1000, 255) == static_cast<float>(1.0 / std::sqrt(255000.0)));
  CHECK_THROWS_AS(quench::lsq_grad_factor(0, 255), quench::error);
  CHECK_THROWS_AS(quench::lsq_grad_factor(10, 0), quench::error);
}

// ---- against torch 1.13 ------------------------------------------------------------------------

TEST_CASE("learnable fake quant: forward and dx bit-exact to torch 1.13, parameter gradients to float32 summation") {
  std::size_t cases = 0, elements = 0, terms = 0, sums = 0;
  double worst_torch = 0, worst_exact = 0;  // |error| / (2^-24 * sum |t|) and / log2 n
  for (const auto& c : qat_test::cases("learnable")) {
    const std::string name = qat_test::str(c, "name");
    CAPTURE(name);
    const shape s = qat_test::ref_shape(c.at("shape", "reference"));
    const std::size_t n = s.numel();
    learnable_fake_quant_options o;
    o.range = {static_cast<std::int32_t>(qat_test::num(c, "qmin")), static_cast<std::int32_t>(qat_test::num(c, "qmax"))};
    const bool per_tensor = qat_test::str(c, "granularity") == "per_tensor";
    o.granularity = per_tensor ? quench::quant_granularity::per_tensor : quench::quant_granularity::per_axis;
    o.axis = qat_test::num(c, "axis");
    o.grad_factor = qat_test::ref_float(c.at("grad_factor", "reference"));
    // torch passes its double grad_factor to the kernel as float32; lsq_grad_factor computes the same.
    if (o.grad_factor != 1.f) CHECK(quench::lsq_grad_factor(n, o.range.max) == o.grad_factor);
    const auto scale = qat_test::ref_floats(c.at("scale", "reference"));
    const auto zp = qat_test::ref_floats(c.at("zero_point", "reference"));
    const auto x = qat_test::read_array<float>(qat_test::str(c, "x"));
    const auto dy = qat_test::read_array<float>(qat_test::str(c, "dy"));
    const auto ty = qat_test::read_array<float>(qat_test::str(c, "y"));
    const auto tdx = qat_test::read_array<float>(qat_test::str(c, "dx"));
    const auto tds = qat_test::ref_floats(c.at("dscale", "reference"));
    const auto tdz = qat_test::ref_floats(c.at("dzero_point", "reference"));
    const auto ts = qat_test::read_array<float>(qat_test::str(c, "terms_scale"));
    const auto tz = qat_test::read_array<float>(qat_test::str(c, "terms_zero_point"));
    const auto zb = qat_test::ref_floats(c.at("terms_zero_points_used", "reference"));
    const auto exact_s = qat_test::ref_doubles(c.at("exact_dscale", "reference"));
    const auto exact_z = qat_test::ref_doubles(c.at("exact_dzero_point", "reference"));
    const auto abs_s = qat_test::ref_doubles(c.at("abs_dscale", "reference"));
    const auto abs_z = qat_test::ref_doubles(c.at("abs_dzero_point", "reference"));
    REQUIRE(x.size() == n);
    REQUIRE(ts.size() == n);
    const std::size_t channels = scale.size();
    const std::size_t per_channel = n / channels;

    // The per-element terms: quench per channel with one channel per element, as the script ran torch.
    std::vector<float> s_el(n), z_el(n);
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t k = 0;
      if (!per_tensor) {
        const auto a = static_cast<std::size_t>(o.axis);
        k = (i / s.inner(a)) % static_cast<std::size_t>(s[a]);
      }
      s_el[i] = scale[k];
      z_el[i] = zb[per_tensor ? 0 : k];
    }
    learnable_fake_quant_options oe = o;
    oe.granularity = quench::quant_granularity::per_axis;
    oe.axis = 0;
    const shape s2{static_cast<std::int64_t>(n), 1};

    for (auto t : quench::supported_simd_targets()) {
      CAPTURE(quench::simd_target_name(t));
      const auto y = run_forward(x, s, scale, zp, o, t);
      const auto g = run_backward(dy, x, s, scale, zp, o, t);
      const auto ge = run_backward(dy, x, s2, s_el, z_el, oe, t);
      qat_test::mismatch_log log;
      for (std::size_t i = 0; i < n; ++i) {
        if (!same_bits(y[i], ty[i])) log.add("y[" + std::to_string(i) + "] x=" + hex(x[i]) + " got " + hex(y[i]) + " torch " + hex(ty[i]));
        if (!same_bits(g.dx[i], tdx[i])) log.add("dx[" + std::to_string(i) + "] x=" + hex(x[i]) + " got " + hex(g.dx[i]) + " torch " + hex(tdx[i]));
        if (!same_bits(ge.dscale[i], ts[i])) log.add("dscale term " + std::to_string(i) + " x=" + hex(x[i]) + " got " + hex(ge.dscale[i]) + " torch " + hex(ts[i]));
        if (!same_bits(ge.dzp[i], tz[i])) log.add("dzp term " + std::to_string(i) + " got " + hex(ge.dzp[i]) + " torch " + hex(tz[i]));
      }
      INFO(log.first);
      CHECK(log.count == 0);
      // The sums: quench (double, fixed order) within half an ulp of the exact sum, plus the double
      // accumulation's own error; torch (float32, its order) within the pairwise-summation bound
      // (ceil(log2 n) + 1) * 2^-24 * sum |t| of quench.
      const double u = std::ldexp(1.0, -24);
      const double levels = std::ceil(std::log2(static_cast<double>(std::max<std::size_t>(per_channel, 2)))) + 1;
      for (std::size_t k = 0; k < channels; ++k) {
        CAPTURE(k);
        const double got[2] = {g.dscale[k], g.dzp[k]}, torch[2] = {tds[k], tdz[k]}, exact[2] = {exact_s[k], exact_z[k]},
                     abs[2] = {abs_s[k], abs_z[k]};
        for (int j = 0; j < 2; ++j) {
          const double half_ulp = 0.5 * static_cast<double>(std::nextafter(static_cast<float>(std::fabs(exact[j])), 1e30f) -
                                                            static_cast<float>(std::fabs(exact[j])));
          const double own = half_ulp + static_cast<double>(per_channel) * std::ldexp(1.0, -52) * abs[j];
          CHECK(std::fabs(got[j] - exact[j]) <= own);
          const double tol = levels * u * abs[j];
          CHECK(std::fabs(got[j] - torch[j]) <= tol);
          if (abs[j] > 0) {
            worst_torch = std::max(worst_torch, std::fabs(torch[j] - exact[j]) / (u * abs[j]) / (levels - 1));
            worst_exact = std::max(worst_exact, std::fabs(got[j] - exact[j]) / (u * abs[j]));
          }
          ++sums;
        }
      }
    }
    ++cases;
    elements += n;
    terms += 2 * n;
  }
  CHECK(cases >= 30);
  MESSAGE("torch learnable: " << cases << " cases, " << elements << " elements: y, dx and " << terms
                              << " per-element scale/zero-point terms bit-exact on every target; " << sums
                              << " summed gradients within (ceil(log2 n) + 1) * 2^-24 * sum|t| of torch (torch's own "
                                 "error from the exact sum: at most "
                              << worst_torch << " * log2(n) * 2^-24 * sum|t|; quench's: " << worst_exact
                              << " * 2^-24 * sum|t|)");
}
