#include <doctest/doctest.h>

#include "quench/core/error.hpp"

TEST_CASE("error carries code, context and a formatted message") {
  try {
    quench::throw_shape_mismatch("node 'conv_3' input 'W'", "rank 4", "2");
    FAIL("no throw");
  } catch (const quench::error& e) {
    CHECK(e.code() == quench::errc::shape_mismatch);
    CHECK(e.context() == "node 'conv_3' input 'W'");
    CHECK(std::string(e.what()) == "[quench.shape_mismatch] node 'conv_3' input 'W': expected rank 4, found 2");
  }
  try {
    quench::throw_error(quench::errc::io_error, {}, "cannot open 'x.onnx'");
  } catch (const std::runtime_error& e) {  // quench::error is a runtime_error
    CHECK(std::string(e.what()) == "[quench.io_error] cannot open 'x.onnx'");
  }
  CHECK(quench::errc_name(quench::errc::not_finite) == "not_finite");
  CHECK(static_cast<int>(quench::errc::not_finite) == 11);
}
