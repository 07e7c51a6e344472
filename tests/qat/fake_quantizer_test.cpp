#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "qat_test_util.hpp"
#include "quench/qat/fake_quantizer.hpp"

using quench::fake_quantizer;
using quench::fake_quantizer_options;
using quench::shape;

TEST_CASE("fake_quantizer switches: observer off freezes the qparams, fake quant off passes x and its gradient") {
  fake_quantizer fq(fake_quantizer_options::torch_default_weight());
  CHECK(fq.observer_enabled());
  CHECK(fq.fake_quant_enabled());
  CHECK(fq.params().scales == std::vector<float>{1.f});
  std::vector<float> x{-1.f, 0.3f, 2.55f, 1.f}, y(4), dx(4), ones(4, 1.f);
  std::vector<std::uint8_t> m(4);
  const shape s{4};
  fq.forward(quench::const_tensor_view<float>(x.data(), s), quench::tensor_view<float>(y.data(), s),
             quench::tensor_view<std::uint8_t>(m.data(), s));
  const float scale = fq.params().scales[0];
  CHECK(scale == 2.55f / 127.5f);
  fq.disable_observer();
  std::vector<float> x2{10.f, -10.f, 0.f, 0.f};
  fq.forward(quench::const_tensor_view<float>(x2.data(), s), quench::tensor_view<float>(y.data(), s),
             quench::tensor_view<std::uint8_t>(m.data(), s));
  CHECK(fq.params().scales[0] == scale);  // frozen
  CHECK(y[0] == 127 * scale);
  CHECK(m == std::vector<std::uint8_t>{0, 0, 1, 1});
  fq.backward(quench::const_tensor_view<float>(ones.data(), s), quench::const_tensor_view<std::uint8_t>(m.data(), s),
              quench::tensor_view<float>(dx.data(), s));
  CHECK(dx == std::vector<float>{0.f, 0.f, 1.f, 1.f});
  fq.disable_fake_quant();
  fq.forward(quench::const_tensor_view<float>(x2.data(), s), quench::tensor_view<float>(y.data(), s),
             quench::tensor_view<std::uint8_t>(m.data(), s));
  CHECK(y == x2);
  CHECK(m == std::vector<std::uint8_t>{1, 1, 1, 1});
  // A per-channel quantizer before any observation has torch's single default scale: it fits only
  // one channel, and says so.
  fake_quantizer pc(fake_quantizer_options::torch_default_per_channel_weight());
  pc.disable_observer();
  CHECK_THROWS_AS(pc.forward(quench::const_tensor_view<float>(x.data(), {2, 2}), quench::tensor_view<float>(y.data(), {2, 2}),
                             quench::tensor_view<std::uint8_t>(m.data(), {2, 2})),
                  quench::error);
  CHECK(fake_quantizer(fake_quantizer_options::torch_default_activation()).params().range.max == 127);
}

TEST_CASE("fake_quantizer reproduces torch 1.13's FakeQuantize step by step") {
  std::size_t steps = 0;
  for (const auto& c : qat_test::cases("fake_quantizer")) {
    const std::string name = qat_test::str(c, "name");
    CAPTURE(name);
    const auto& oj = c.at("options", "reference");
    fake_quantizer_options o;
    const std::string t = qat_test::str(oj, "type");
    o.observer.type = t == "int8" ? quench::dtype::int8 : quench::dtype::uint8;
    o.observer.symmetric = oj.at("symmetric", "reference").as_bool("reference");
    o.observer.reduce_range = oj.at("reduce_range", "reference").as_bool("reference");
    const auto r = qat_test::ref_ints(oj.at("range", "reference"));
    o.observer.range = quench::integer_range{static_cast<std::int32_t>(r[0]), static_cast<std::int32_t>(r[1])};
    o.observer.averaging_constant = static_cast<float>(oj.at("averaging_constant", "reference").as_double("reference"));
    o.observer.eps = static_cast<float>(oj.at("eps", "reference").as_double("reference"));
    o.observer.ch_axis = qat_test::num(oj, "ch_axis");
    o.per_channel = oj.at("per_channel", "reference").as_bool("reference");
    const shape s = qat_test::ref_shape(c.at("shape", "reference"));
    for (auto target : quench::supported_simd_targets()) {
      CAPTURE(quench::simd_target_name(target));
      fake_quantizer fq(o);
      std::size_t k = 0;
      for (const auto& st : c.at("steps", "reference").as_array("reference")) {
        CAPTURE(k++);
        fq.enable_observer(st.at("observer_enabled", "reference").as_bool("reference"));
        fq.enable_fake_quant(st.at("fake_quant_enabled", "reference").as_bool("reference"));
        const auto x = qat_test::read_array<float>(qat_test::str(st, "x"));
        const auto ty = qat_test::read_array<float>(qat_test::str(st, "y"));
        const auto tdx = qat_test::read_array<float>(qat_test::str(st, "dx"));
        std::vector<float> y(x.size()), dx(x.size()), ones(x.size(), 1.f);
        std::vector<std::uint8_t> m(x.size());
        fq.forward(quench::const_tensor_view<float>(x.data(), s), quench::tensor_view<float>(y.data(), s),
                   quench::tensor_view<std::uint8_t>(m.data(), s), target);
        fq.backward(quench::const_tensor_view<float>(ones.data(), s), quench::const_tensor_view<std::uint8_t>(m.data(), s),
                    quench::tensor_view<float>(dx.data(), s), target);
        std::size_t bad = 0;
        for (std::size_t i = 0; i < x.size(); ++i)
          bad += !qat_test::same_bits(y[i], ty[i]) || !qat_test::same_bits(dx[i], tdx[i]);
        CHECK(bad == 0);
        const auto ts = qat_test::ref_floats(st.at("scale", "reference"));
        const auto tz = qat_test::ref_ints(st.at("zero_point", "reference"));
        REQUIRE(fq.params().scales.size() == ts.size());
        for (std::size_t i = 0; i < ts.size(); ++i) {
          CHECK(qat_test::same_bits(fq.params().scales[i], ts[i]));
          CHECK(fq.params().zero_point(i) == tz[i]);
        }
        ++steps;
      }
    }
  }
  CHECK(steps >= 20);
  MESSAGE("torch FakeQuantize: " << steps << " steps (output, gradient, scale, zero point) equal");
}
