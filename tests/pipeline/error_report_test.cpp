#include <doctest/doctest.h>

#include <limits>
#include <vector>

#include "quench/pipeline/error_report.hpp"

TEST_CASE("tensor errors of two sample sets merge into the error over both") {
  const std::vector<float> x{1, -2, 3, 0.5f, 4, -1}, y{1.1f, -2, 2.5f, 0.5f, 4.2f, -0.7f};
  quench::pipeline::tensor_error all, first, second;
  all.add(x.data(), y.data(), 6);
  first.add(x.data(), y.data(), 2);
  second.add(x.data() + 2, y.data() + 2, 4);
  first.merge(second);
  CHECK(first.elements == 6);
  CHECK(first.signal == doctest::Approx(all.signal));
  CHECK(first.noise == doctest::Approx(all.noise));
  CHECK(first.sqnr_db() == doctest::Approx(all.sqnr_db()));
  CHECK(first.cosine() == doctest::Approx(all.cosine()));
  CHECK(first.max_abs_error == doctest::Approx(0.5));  // from the second set
  // A non-finite element on one side makes the merged SQNR -inf, as it would over all samples.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  quench::pipeline::tensor_error bad;
  bad.add(&nan, &nan, 1);
  first.merge(bad);
  CHECK(first.sqnr_db() == -std::numeric_limits<double>::infinity());
}
