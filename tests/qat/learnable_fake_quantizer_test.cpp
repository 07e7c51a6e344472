#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "qat_test_util.hpp"
#include "quench/qat/learnable_fake_quantizer.hpp"

using quench::learnable_fake_quantizer;
using quench::learnable_fake_quantizer_options;
using quench::shape;

TEST_CASE("learnable_fake_quantizer modes: static estimates, then learning with gradients, then observation") {
  learnable_fake_quantizer_options o;
  o.range = {-128, 127};
  o.observer.type = quench::dtype::int8;
  o.observer.symmetric = true;
  learnable_fake_quantizer q(o);
  CHECK(q.static_enabled());
  CHECK(q.fake_quant_enabled());
  CHECK(!q.learning_enabled());
  std::vector<float> x{-1.f, 0.5f, 2.55f, 100.f}, y(4), dy{1.f, 1.f, 1.f, 1.f}, dx(4);
  const shape s{4};
  q.forward({x.data(), s}, {y.data(), s});
  CHECK(q.scale()[0] == 100.f / 127.5f);
  q.backward({dy.data(), s}, {x.data(), s}, {dx.data(), s});
  CHECK(q.scale_grad()[0] == 0.f);  // learning off: no parameter gradients
  q.enable_param_learning();
  q.scale()[0] = -1.f;  // an optimizer overshoot: clamped to float32 eps on the next forward
  q.forward({x.data(), s}, {y.data(), s});
  CHECK(q.scale()[0] == 1.1920929e-07f);
  q.scale()[0] = 0.02f;
  q.forward({x.data(), s}, {y.data(), s});
  q.backward({dy.data(), s}, {x.data(), s}, {dx.data(), s});
  const float g = q.scale_grad()[0];
  CHECK(g != 0.f);
  q.backward({dy.data(), s}, {x.data(), s}, {dx.data(), s});
  CHECK(q.scale_grad()[0] == g + g);  // accumulates, as torch's .grad
  q.zero_grad();
  CHECK(q.scale_grad()[0] == 0.f);
  q.enable_static_observation();
  q.forward({x.data(), s}, {y.data(), s});
  CHECK(y == x);
  q.backward({dy.data(), s}, {x.data(), s}, {dx.data(), s});
  CHECK(dx == dy);
  const auto p = q.calculate_qparams();
  CHECK(p.zero_point(0) == 0);
  CHECK(p.range.max == 127);
}

TEST_CASE("learnable_fake_quantizer reproduces torch 1.13's _LearnableFakeQuantize step by step") {
  std::size_t steps = 0, grads = 0;
  for (const auto& c : qat_test::cases("learnable_quantizer")) {
    const std::string name = qat_test::str(c, "name");
    CAPTURE(name);
    const auto& oj = c.at("options", "reference");
    learnable_fake_quantizer_options o;
    const std::string t = qat_test::str(oj, "type");
    o.observer.type = t == "int8" ? quench::dtype::int8 : quench::dtype::uint8;
    o.observer.symmetric = oj.at("symmetric", "reference").as_bool("reference");
    o.observer.reduce_range = oj.at("reduce_range", "reference").as_bool("reference");
    o.observer.averaging_constant = static_cast<float>(oj.at("averaging_constant", "reference").as_double("reference"));
    o.observer.eps = static_cast<float>(oj.at("eps", "reference").as_double("reference"));
    o.observer.ch_axis = qat_test::num(oj, "ch_axis");
    o.range = {static_cast<std::int32_t>(qat_test::num(c, "qmin")), static_cast<std::int32_t>(qat_test::num(c, "qmax"))};
    o.channels = static_cast<std::size_t>(qat_test::num(c, "channels"));
    o.use_grad_scaling = c.at("use_grad_scaling", "reference").as_bool("reference");
    const shape s = qat_test::ref_shape(c.at("shape", "reference"));
    for (auto target : quench::supported_simd_targets()) {
      CAPTURE(quench::simd_target_name(target));
      learnable_fake_quantizer q(o);
      std::size_t k = 0;
      for (const auto& st : c.at("steps", "reference").as_array("reference")) {
        CAPTURE(k++);
        const std::string mode = qat_test::str(st, "mode");
        if (mode == "static_estimate") q.enable_static_estimate();
        if (mode == "param_learning") q.enable_param_learning();
        if (mode == "static_observation") q.enable_static_observation();
        const auto x = qat_test::read_array<float>(qat_test::str(st, "x"));
        const auto dy = qat_test::read_array<float>(qat_test::str(st, "dy"));
        const auto ty = qat_test::read_array<float>(qat_test::str(st, "y"));
        const auto tdx = qat_test::read_array<float>(qat_test::str(st, "dx"));
        std::vector<float> y(x.size()), dx(x.size());
        q.zero_grad();
        q.forward({x.data(), s}, {y.data(), s}, target);
        q.backward({dy.data(), s}, {x.data(), s}, {dx.data(), s}, target);
        std::size_t bad = 0;
        for (std::size_t i = 0; i < x.size(); ++i) bad += !qat_test::same_bits(y[i], ty[i]) || !qat_test::same_bits(dx[i], tdx[i]);
        CHECK(bad == 0);
        const auto ts = qat_test::ref_floats(st.at("scale", "reference"));
        const auto tz = qat_test::ref_floats(st.at("zero_point", "reference"));
        REQUIRE(q.scale().size() == ts.size());
        for (std::size_t i = 0; i < ts.size(); ++i) {
          CHECK(qat_test::same_bits(q.scale()[i], ts[i]));
          CHECK(qat_test::same_bits(q.zero_point()[i], tz[i]));
        }
        if (const auto* g = st.find("scale_grad")) {
          // Sums of float32 terms: within the pairwise bound of the op test, with sum |t| bounded by
          // sum |dy| * max(|qmax - zp|, |zp - qmin|, 1) * grad_factor (scale) and sum |dy| * scale *
          // grad_factor (zero point).
          const auto tgs = qat_test::ref_floats(*g);
          const auto tgz = qat_test::ref_floats(st.at("zero_point_grad", "reference"));
          const std::size_t per = x.size() / ts.size();
          const double gf = o.use_grad_scaling ? 1.0 / std::sqrt(static_cast<double>(x.size()) * o.range.max) : 1.0;
          double sum_dy = 0;
          for (float v : dy) sum_dy += std::fabs(v);
          const double levels = std::ceil(std::log2(static_cast<double>(per))) + 1;
          for (std::size_t i = 0; i < ts.size(); ++i) {
            const double zb = std::max(std::fabs(o.range.max - tz[i]), std::fabs(tz[i] - o.range.min));
            const double tol_s = levels * std::ldexp(1.0, -24) * sum_dy * std::max(zb, 1.0) * gf;
            const double tol_z = levels * std::ldexp(1.0, -24) * sum_dy * ts[i] * gf;
            CHECK(std::fabs(q.scale_grad()[i] - tgs[i]) <= tol_s);
            CHECK(std::fabs(q.zero_point_grad()[i] - tgz[i]) <= tol_z);
            ++grads;
          }
          // The reference's SGD step (taken with torch's gradients), so the next step starts equal.
          const auto sa = qat_test::ref_floats(st.at("scale_after", "reference"));
          const auto za = qat_test::ref_floats(st.at("zero_point_after", "reference"));
          q.scale() = sa;
          q.zero_point() = za;
        }
        ++steps;
      }
      const auto p = q.calculate_qparams();
      const auto fs = qat_test::ref_floats(c.at("final_scale", "reference"));
      const auto fz = qat_test::ref_ints(c.at("final_zero_point", "reference"));
      for (std::size_t i = 0; i < fs.size(); ++i) {
        CHECK(qat_test::same_bits(p.scales[i], fs[i]));
        CHECK(p.zero_point(i) == fz[i]);
      }
    }
  }
  CHECK(steps >= 30);
  MESSAGE("torch _LearnableFakeQuantize: " << steps << " steps (output, dx, parameters bit-exact; " << grads
                                           << " parameter gradients within the float32 summation bound)");
}
