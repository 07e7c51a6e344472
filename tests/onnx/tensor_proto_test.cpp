#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "quench/onnx/tensor_proto.hpp"

namespace qo = quench::onnx;
using quench::dtype;

TEST_CASE("raw_data round-trips through to_proto/from_proto") {
  auto t = quench::tensor::from<float>({2, 2}, {1.f, -2.f, 0.5f, 3.f}, "w");
  ONNX_NAMESPACE::TensorProto p;
  qo::to_proto(t, p);
  CHECK(p.data_type() == 1);
  CHECK(p.dims_size() == 2);
  auto back = qo::from_proto(p);
  CHECK(back.name() == "w");
  CHECK(back.shape() == t.shape());
  CHECK(back.view<float>()[1] == -2.f);
}

TEST_CASE("typed fields are decoded per onnx.proto") {
  ONNX_NAMESPACE::TensorProto p;
  p.set_name("q");
  p.set_data_type(3);  // int8 in int32_data
  p.add_dims(3);
  for (int v : {-128, 0, 127}) p.add_int32_data(v);
  auto t = qo::from_proto(p);
  CHECK(t.view<std::int8_t>()[0] == -128);
  CHECK(t.view<std::int8_t>()[2] == 127);

  ONNX_NAMESPACE::TensorProto i4;
  i4.set_data_type(22);  // int4: one packed byte per int32 entry
  i4.add_dims(3);
  i4.add_int32_data(0x21);
  i4.add_int32_data(0x0f);
  auto t4 = qo::from_proto(i4);
  CHECK(t4.dtype() == dtype::int4);
  CHECK(t4.nbytes() == 2);
  CHECK(static_cast<int>(t4.bytes()[0]) == 0x21);
}

TEST_CASE("malformed TensorProtos are errors that name the tensor") {
  ONNX_NAMESPACE::TensorProto p;
  p.set_name("bias");
  p.set_data_type(1);
  p.add_dims(4);
  p.set_raw_data(std::string(12, '\0'));
  CHECK_THROWS_WITH(qo::from_proto(p),
                    "[quench.parse_error] tensor 'bias': expected 16 bytes of raw_data for float [4], found 12");
  p.clear_raw_data();
  p.add_float_data(1.f);
  CHECK_THROWS_AS(qo::from_proto(p), quench::error);
  p.set_data_type(15);  // complex128
  CHECK_THROWS_AS(qo::from_proto(p), quench::error);
  CHECK_THROWS_AS(qo::read_tensor_file("/nonexistent/input_0.pb"), quench::error);
}

TEST_CASE("node test data files load") {
  auto t = qo::read_tensor_file(std::string(QUENCH_ONNX_TESTDATA_DIR) +
                                "/node/test_quantizelinear/test_data_set_0/output_0.pb");
  CHECK(t.dtype() == dtype::uint8);
  CHECK(t.size() == 6);
}
