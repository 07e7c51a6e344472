// Every calib header in one more translation unit: with the tests that include them too, an
// accidental non-inline definition in a header fails to link (the role tests/odr plays for
// quench.hpp), and each header's includes are checked once more together.

#include <doctest/doctest.h>

#include "quench/calib/calibration_state.hpp"
#include "quench/calib/calibration_table.hpp"
#include "quench/calib/entropy.hpp"
#include "quench/calib/histogram.hpp"
#include "quench/calib/histogram_observer.hpp"
#include "quench/calib/max_range.hpp"
#include "quench/calib/minmax_observer.hpp"
#include "quench/calib/mse.hpp"
#include "quench/calib/nonfinite.hpp"
#include "quench/calib/ort_histogram_observer.hpp"
#include "quench/calib/percentile.hpp"
#include "quench/calib/range.hpp"

TEST_CASE("calib headers link from several translation units; the documented usage compiles") {
  quench::calib::calibration_state st;
  st.add(quench::calib::histogram_observer("x"));
  const auto t = quench::tensor::from<float>({2, 2}, {0.5f, -1.f, 2.f, 0.f});
  quench::calib::observe(*st.find("x"), t);
  const auto h = std::get<quench::calib::histogram_observer>(*st.find("x")).histogram();
  quench::calib::calibration_table table;
  quench::calib::tensor_calibration r;
  r.name = "x";
  r.observer = quench::calib::observer_kind(*st.find("x"));
  r.method = "max";
  r.range = quench::calib::max_range(h);
  table.add(r);
  CHECK(quench::calib::read_json(quench::calib::write_json(table)) == table);
  CHECK(r.range == quench::calib::range{-1.0, 2.0});
}
