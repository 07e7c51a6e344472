#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "prune/prune_test_util.hpp"
#include "quench/prune/amount.hpp"
#include "quench/prune/unstructured.hpp"

using quench::dtype;
using quench::tensor;
using quench::prune::prune_amount;
namespace pr = quench::prune;

TEST_CASE("masks equal torch.nn.utils.prune (l1_unstructured, ln_structured, global_unstructured, two rounds)") {
  const auto& ref = prune_test::reference();
  if (ref.is_null()) return;
  int cases = 0, masks = 0;
  std::size_t entries = 0;
  for (const auto& c : ref.at("cases", "ref").as_array("cases")) {
    const std::string name = c.at("name", "case").as_string("name");
    CAPTURE(name);
    std::vector<tensor> weights;
    const auto got = prune_test::replay(c, weights);
    const auto& files = c.at("masks", "case").as_array("masks");
    REQUIRE(got.size() == files.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
      const tensor want = quench::read_npy(prune_test::reference_dir() + "/" + files[i].as_string("mask"));
      REQUIRE(want.shape() == got[i].shape());
      std::size_t wrong = 0;
      for (std::size_t j = 0; j < want.size(); ++j) wrong += want.view<std::uint8_t>()[j] != got[i].view<std::uint8_t>()[j];
      CHECK(wrong == 0);
      entries += want.size();
      ++masks;
    }
    ++cases;
  }
  MESSAGE(cases << " torch.nn.utils.prune cases, " << masks << " masks, " << entries << " entries: all equal");
  CHECK(cases == 37);
}

TEST_CASE("prune_amount: torch's rounding and checks") {
  // Python round(): half to even on the double product.
  const std::vector<std::pair<double, std::int64_t>> five = {{0.1, 0}, {0.3, 2}, {0.5, 2}, {0.7, 4}, {0.9, 4}, {1.0, 5}, {0.0, 0}};
  for (const auto& [f, k] : five) CHECK(pr::units_to_prune(prune_amount::fraction(f), 5) == k);
  CHECK(pr::units_to_prune(prune_amount::fraction(0.25), 10) == 2);   // 2.5 -> 2
  CHECK(pr::units_to_prune(prune_amount::fraction(0.35), 10) == 4);   // 3.5 -> 4 (0.35 * 10 = 3.5)
  CHECK(pr::units_to_prune(prune_amount::count(1), 5) == 1);          // amount=1 is one unit ...
  CHECK(pr::units_to_prune(prune_amount::fraction(1.0), 5) == 5);     // ... amount=1.0 all of them
  CHECK_THROWS_WITH_AS(pr::units_to_prune(prune_amount::count(6), 5, "tensor 'w'"),
                       "[quench.invalid_argument] tensor 'w': amount 6 is more than the 5 units that can be pruned", quench::error);
  CHECK_THROWS_AS(prune_amount::count(-1), quench::error);
  CHECK_THROWS_AS(prune_amount::fraction(1.5), quench::error);
  CHECK_THROWS_AS(prune_amount::fraction(-0.1), quench::error);
  CHECK_THROWS_AS(prune_amount::fraction(std::nan("")), quench::error);
  CHECK(to_string(prune_amount::fraction(0.3)) == "0.3");
  CHECK(to_string(prune_amount::count(7)) == "7");
}

TEST_CASE("l1_unstructured: ties prune the lower index first; half-precision weights; NaN refused") {
  tensor w = tensor::from<float>({2, 4}, {1, -1, 1, 0.5f, -0.5f, 2, 1, 1}, "w");
  const tensor m = pr::l1_unstructured(w, prune_amount::count(3));
  CHECK(std::vector<std::uint8_t>(m.view<std::uint8_t>().begin(), m.view<std::uint8_t>().end()) ==
        std::vector<std::uint8_t>{0, 1, 1, 0, 0, 1, 1, 1});
  CHECK(pr::mask_sparsity(m) == doctest::Approx(3.0 / 8));
  tensor h(dtype::float16, {2, 4}, "h");
  for (std::size_t i = 0; i < 8; ++i) h.view<quench::float16>()[i] = quench::float16(w.view<float>()[i]);
  const tensor mh = pr::l1_unstructured(h, prune_amount::count(3));
  CHECK(std::memcmp(mh.bytes(), m.bytes(), 8) == 0);
  w.view<float>()[5] = std::nanf("");
  CHECK_THROWS_WITH_AS(pr::l1_unstructured(w, prune_amount::count(1)), doctest::Contains("tensor 'w': element 5 is NaN"),
                       quench::error);
  tensor ints(dtype::int64, {4}, "shape");
  CHECK_THROWS_AS(pr::l1_unstructured(ints, prune_amount::count(1)), quench::error);
  tensor other(dtype::uint8, {4, 2});
  CHECK_THROWS_AS(pr::l1_unstructured(tensor(dtype::float32, {2, 4}), prune_amount::count(1), &other), quench::error);
}

TEST_CASE("random_unstructured: exact counts, seeded, uniform, composes with a previous mask") {
  tensor w(dtype::float32, {10, 20}, "w");
  const auto a = prune_amount::fraction(0.3);
  const tensor m1 = pr::random_unstructured(w, a, 1);
  CHECK(pr::mask_sparsity(m1) == doctest::Approx(0.3));
  CHECK(std::memcmp(m1.bytes(), pr::random_unstructured(w, a, 1).bytes(), m1.nbytes()) == 0);  // same seed, same mask
  CHECK(std::memcmp(m1.bytes(), pr::random_unstructured(w, a, 2).bytes(), m1.nbytes()) != 0);
  // Over many seeds every entry is pruned with probability 0.3 (binomial: 2000 draws, sd ~ 0.0102).
  std::vector<int> pruned(w.size(), 0);
  const int seeds = 2000;
  for (int s = 0; s < seeds; ++s) {
    const tensor m = pr::random_unstructured(w, a, static_cast<std::uint64_t>(s) * 7919 + 3);
    for (std::size_t i = 0; i < w.size(); ++i) pruned[i] += m.view<std::uint8_t>()[i] == 0;
  }
  double worst = 0, mean = 0;
  for (int p : pruned) {
    worst = std::max(worst, std::fabs(p / double(seeds) - 0.3));
    mean += p / double(seeds) / static_cast<double>(w.size());
  }
  CHECK(mean == doctest::Approx(0.3).epsilon(1e-12));
  CHECK(worst < 0.05);  // ~4.9 sd over 200 entries
  // Composition: a second round prunes 30 % of what is left and never revives an entry.
  const tensor m2 = pr::random_unstructured(w, a, 9, &m1);
  const auto ones1 = 200 - 60;
  CHECK(static_cast<std::int64_t>(std::count(m2.view<std::uint8_t>().begin(), m2.view<std::uint8_t>().end(), 1)) ==
        ones1 - 42);
  for (std::size_t i = 0; i < w.size(); ++i) CHECK((m2.view<std::uint8_t>()[i] <= m1.view<std::uint8_t>()[i]));
}

TEST_CASE("global_unstructured: ties across tensors in concatenation order; refusals") {
  tensor a = tensor::from<float>({2}, {1, 2}, "a");
  tensor b = tensor::from<float>({3}, {1, 0.5f, 3}, "b");
  const auto m = pr::global_unstructured({&a, &b}, prune_amount::count(2));
  CHECK(std::vector<std::uint8_t>(m[0].view<std::uint8_t>().begin(), m[0].view<std::uint8_t>().end()) == std::vector<std::uint8_t>{0, 1});
  CHECK(std::vector<std::uint8_t>(m[1].view<std::uint8_t>().begin(), m[1].view<std::uint8_t>().end()) ==
        std::vector<std::uint8_t>{1, 0, 1});
  CHECK_THROWS_AS(pr::global_unstructured({&a, &b}, prune_amount::count(6)), quench::error);
  CHECK_THROWS_AS(pr::global_unstructured({&a, &b}, prune_amount::count(1), {&m[0]}), quench::error);
}
