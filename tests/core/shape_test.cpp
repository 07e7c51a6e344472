#include <doctest/doctest.h>

#include "quench/core/shape.hpp"

TEST_CASE("shape counts elements and splits around an axis") {
  quench::shape s{2, 3, 4};
  CHECK(s.rank() == 3);
  CHECK(s.numel() == 24);
  CHECK(s.outer(1) == 2);
  CHECK(s.inner(1) == 4);
  CHECK(quench::shape{}.numel() == 1);
  CHECK(quench::shape{3, 0}.numel() == 0);
  CHECK(to_string(s) == "[2, 3, 4]");
  CHECK_THROWS_AS(quench::shape({2, -1}), quench::error);
}

TEST_CASE("normalize_axis accepts negative axes and rejects out of range") {
  CHECK(quench::normalize_axis(-1, 4) == 3);
  CHECK(quench::normalize_axis(0, 4) == 0);
  CHECK_THROWS_WITH(quench::normalize_axis(4, 4, "tensor 'w'"),
                    "[quench.out_of_range] tensor 'w': axis 4 is outside [-4, 3] for rank 4");
  CHECK_THROWS_AS(quench::normalize_axis(-5, 4), quench::error);
}
