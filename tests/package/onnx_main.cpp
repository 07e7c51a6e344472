// A consumer of quench::onnx: links the ONNX protobuf library through the exported target.
#include <quench/onnx.hpp>

#include <cstdio>

int main() {
  auto t = quench::tensor::from<float>({2}, {1.f, 2.f}, "x");
  ::ONNX_NAMESPACE::TensorProto p;
  quench::onnx::to_proto(t, p);
  auto back = quench::onnx::from_proto(p);
  std::printf("round-tripped '%s' with %zu elements\n", back.name().c_str(), back.size());
  return back.view<float>()[1] == 2.f ? 0 : 1;
}
