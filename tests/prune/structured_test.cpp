#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "quench/prune/structured.hpp"

using quench::dtype;
using quench::tensor;
using quench::prune::prune_amount;
namespace pr = quench::prune;

namespace {
std::vector<std::uint8_t> bytes(const tensor& m) { return {m.view<std::uint8_t>().begin(), m.view<std::uint8_t>().end()}; }
}  // namespace

TEST_CASE("ln_structured: norms over the other dimensions, every norm torch.norm has for vectors") {
  // Rows (dim 0): |.|_1 = 6, 3, 4.5; |.|_2 = sqrt(14), sqrt(5), sqrt(10.25); max = 3, 2, 4; min |x| = 1, 0, 0 (a tie: the lower row goes).
  tensor w = tensor::from<float>({3, 3}, {1, -2, 3, 0, 1, 2, -4, 0.5f, 0}, "w");
  CHECK(bytes(pr::ln_structured(w, prune_amount::count(1), 1, 0)) == std::vector<std::uint8_t>{1, 1, 1, 0, 0, 0, 1, 1, 1});
  CHECK(bytes(pr::ln_structured(w, prune_amount::count(1), 2, 0)) == std::vector<std::uint8_t>{1, 1, 1, 0, 0, 0, 1, 1, 1});
  CHECK(bytes(pr::ln_structured(w, prune_amount::count(1), std::numeric_limits<double>::infinity(), 0)) ==
        std::vector<std::uint8_t>{1, 1, 1, 0, 0, 0, 1, 1, 1});
  CHECK(bytes(pr::ln_structured(w, prune_amount::count(1), -std::numeric_limits<double>::infinity(), 0)) ==
        std::vector<std::uint8_t>{1, 1, 1, 0, 0, 0, 1, 1, 1});
  CHECK(bytes(pr::ln_structured(w, prune_amount::count(2), -std::numeric_limits<double>::infinity(), 0)) ==
        std::vector<std::uint8_t>{1, 1, 1, 0, 0, 0, 0, 0, 0});
  // Columns (dim 1 = -1): L1 = 5, 3.5, 5 -> column 1; L0 (non-zeros) = 2, 3, 2 -> column 0 (lower index on a tie).
  CHECK(bytes(pr::ln_structured(w, prune_amount::count(1), 1, -1)) == std::vector<std::uint8_t>{1, 0, 1, 1, 0, 1, 1, 0, 1});
  CHECK(bytes(pr::ln_structured(w, prune_amount::count(1), 0, 1)) == std::vector<std::uint8_t>{0, 1, 1, 0, 1, 1, 0, 1, 1});
  const auto norms = pr::channel_norms(w.view<float>().data(), nullptr, 1, 3, 3, 3.0);
  CHECK(norms[0] == doctest::Approx(std::cbrt(1 + 8 + 27.0)));
}

TEST_CASE("ln_structured: composition skips channels already pruned and keeps old zeros") {
  tensor w(dtype::float32, {4, 2, 3}, "w");
  for (std::size_t i = 0; i < w.size(); ++i) w.view<float>()[i] = static_cast<float>(i + 1);
  const tensor m1 = pr::ln_structured(w, prune_amount::fraction(0.5), 2, 0);  // filters 0 and 1 pruned
  CHECK(pr::mask_sparsity(m1) == doctest::Approx(0.5));
  const tensor m2 = pr::ln_structured(w, prune_amount::fraction(0.5), 2, 0, &m1);  // half of the 2 left
  CHECK(pr::mask_sparsity(m2) == doctest::Approx(0.75));
  for (std::size_t i = 0; i < 6; ++i) CHECK(m2.view<std::uint8_t>()[12 + i] == 0);  // filter 2 went next
  const tensor u = pr::l1_unstructured(w, prune_amount::count(5));
  const tensor m3 = pr::ln_structured(w, prune_amount::count(1), 1, 1, &u);
  for (std::size_t i = 0; i < w.size(); ++i) CHECK((m3.view<std::uint8_t>()[i] <= u.view<std::uint8_t>()[i]));
}

TEST_CASE("ln_structured: refusals name the tensor") {
  tensor v(dtype::float32, {8}, "bias");
  CHECK_THROWS_WITH_AS(pr::ln_structured(v, prune_amount::count(1), 2, 0), doctest::Contains("tensor 'bias': expected a tensor of rank >= 2"),
                       quench::error);
  tensor w(dtype::float32, {4, 4}, "w");
  CHECK_THROWS_AS(pr::ln_structured(w, prune_amount::count(1), 2, 2), quench::error);
  CHECK_THROWS_AS(pr::ln_structured(w, prune_amount::count(5), 2, 0), quench::error);
  CHECK_THROWS_AS(pr::ln_structured(w, prune_amount::count(1), -1, 0), quench::error);
  CHECK_THROWS_AS(pr::ln_structured(w, prune_amount::count(1), std::nan(""), 0), quench::error);
}
