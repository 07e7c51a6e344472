// External data past the inline limit, new tensors of models that came with external data, and
// mapped pages released when the last tensor viewing them goes (include/quench/onnx/model_io.hpp,
// external_data.hpp). The limits are lowered so the files stay small.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "quench/onnx/model_io.hpp"

namespace fs = std::filesystem;
namespace qo = quench::onnx;
using quench::dim;

namespace {
fs::path scratch(const std::string& name) {
  fs::path d = fs::path(QUENCH_TEST_BINARY_DIR) / "external_data_test" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// z = MatMul(x, w) + b: w is [n, n] float32 (value i * 0.5 at flat index i), b two floats.
quench::model matmul_model(std::int64_t n) {
  quench::model m;
  m.set_opset("", 17);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{1, {}}, dim{n, {}}});
  quench::tensor w(quench::dtype::float32, {n, n}, "w");
  auto wv = w.view<float>();
  for (std::size_t i = 0; i < wv.size(); ++i) wv[i] = static_cast<float>(i) * 0.5f;
  auto& wval = g.add_initializer(std::move(w));
  auto& b = g.add_initializer(quench::tensor::from<float>({2}, {1.f, 2.f}, "b"));
  auto& mm = g.add_node("MatMul", {&x, &wval}, {"y"});
  auto& add = g.add_node("Add", {mm.output(0), &b}, {"z"});
  g.add_output(*add.output(0));
  return m;
}

bool weights_intact(const quench::model& m, std::int64_t n) {
  const quench::tensor& t = *m.main_graph().find_value("w")->initializer();
  if (t.shape() != quench::shape{n, n}) return false;
  const auto v = t.view<const float>();
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] != static_cast<float>(i) * 0.5f) return false;
  return true;
}

/// This process's resident bytes (/proc/self/statm), 0 when unknown.
std::size_t resident_bytes() {
  std::ifstream in("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  if (!(in >> pages >> resident)) return 0;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}
}  // namespace

TEST_CASE("tensors past the inline limit go to external data on their own, and load back") {
  const fs::path dir = scratch("limit");
  const quench::model m = matmul_model(128);  // 64 KiB of weights
  qo::save_options opts;
  opts.inline_limit = 32 * 1024;  // stands in for protobuf's 2 GiB
  qo::save_model(m, dir / "big.onnx", opts);
  REQUIRE(fs::exists(dir / "big.onnx.data"));
  CHECK(fs::file_size(dir / "big.onnx.data") == 128 * 128 * 4);
  CHECK(fs::file_size(dir / "big.onnx") < 1024);

  const quench::model back = qo::load_model(dir / "big.onnx");
  const quench::value* w = back.main_graph().find_value("w");
  REQUIRE(w);
  CHECK(w->initializer_encoding() == quench::tensor_encoding::external);
  CHECK(w->initializer()->is_read_only());  // mapped, not read
  CHECK(weights_intact(back, 128));
  // The 8-byte bias is below the 1 KiB automatic threshold: inline.
  CHECK(back.main_graph().find_value("b")->initializer_encoding() == quench::tensor_encoding::raw);

  // Under the limit nothing goes external.
  qo::save_model(m, dir / "small.onnx");
  CHECK_FALSE(fs::exists(dir / "small.onnx.data"));
  CHECK(fs::file_size(dir / "small.onnx") > 128 * 128 * 4);
  CHECK_FALSE(qo::load_model(dir / "small.onnx").had_external_data);
}

TEST_CASE("a model that came with external data leaves with it: new tensors of 1 KiB or more go external") {
  const fs::path dir = scratch("keep");
  qo::save_options opts;
  opts.external_threshold = 1024;
  qo::save_model(matmul_model(128), dir / "in.onnx", opts);
  quench::model m = qo::load_model(dir / "in.onnx");
  CHECK(m.had_external_data);

  // A pass replaces the weight, the only external tensor, by a new (owned, raw-encoded) int8
  // tensor of the same shape, as weight quantization does.
  auto& g = m.main_graph();
  quench::tensor q(quench::dtype::int8, {128, 128}, "w");
  auto qv = q.view<std::int8_t>();
  for (std::size_t i = 0; i < qv.size(); ++i) qv[i] = static_cast<std::int8_t>(static_cast<int>(i % 255) - 127);
  g.set_initializer(*g.find_value("w"), std::move(q));
  g.find_value("w")->set_initializer_encoding(quench::tensor_encoding::raw);
  qo::save_model(m, dir / "out.onnx");
  REQUIRE(fs::exists(dir / "out.onnx.data"));
  CHECK(fs::file_size(dir / "out.onnx.data") == 128 * 128);
  CHECK(fs::file_size(dir / "out.onnx") < 1024);

  const quench::model back = qo::load_model(dir / "out.onnx");
  const quench::value* w = back.main_graph().find_value("w");
  CHECK(w->initializer_encoding() == quench::tensor_encoding::external);
  const auto bv = w->initializer()->view<const std::int8_t>();
  bool same = true;
  for (std::size_t i = 0; i < bv.size(); ++i) same = same && bv[i] == static_cast<std::int8_t>(static_cast<int>(i % 255) - 127);
  CHECK(same);
  // Below 1 KiB: stays inline, as it came.
  CHECK(back.main_graph().find_value("b")->initializer_encoding() == quench::tensor_encoding::raw);

  // keep_external = false writes everything inline.
  qo::save_options inl;
  inl.keep_external = false;
  qo::save_model(m, dir / "inline.onnx", inl);
  CHECK_FALSE(fs::exists(dir / "inline.onnx.data"));
  CHECK(qo::load_model(dir / "inline.onnx").main_graph().find_value("w")->initializer_encoding() == quench::tensor_encoding::raw);
}

TEST_CASE("a replaced mapped tensor leaves the resident set; tensors sharing its pages read right") {
  const fs::path dir = scratch("release");
  // Two 16 MiB weights packed without alignment (2047^2 * 4 bytes is not a page multiple): they
  // share a page at the seam.
  constexpr std::int64_t n = 2047;
  quench::model m = matmul_model(n);
  {
    auto& g = m.main_graph();
    quench::tensor w2(quench::dtype::float32, {n, n}, "w2");
    auto v = w2.view<float>();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = -static_cast<float>(i);
    auto& w2v = g.add_initializer(std::move(w2));
    auto& mm = g.add_node("MatMul", {g.outputs()[0], &w2v}, {"u"});
    g.add_output(*mm.output(0));
  }
  qo::save_options opts;
  opts.external_threshold = 1024;
  opts.external_alignment = 1;
  qo::save_model(m, dir / "m.onnx", opts);
  REQUIRE(fs::file_size(dir / "m.onnx.data") == 2 * n * n * 4);

  quench::model loaded = qo::load_model(dir / "m.onnx");
  auto& g = loaded.main_graph();
  const std::size_t before = resident_bytes();
  CHECK(weights_intact(loaded, n));  // touches all 16 MiB of w
  const std::size_t touched = resident_bytes();
  g.set_initializer(*g.find_value("w"), quench::tensor::from<float>({1}, {0.f}, "w"));
  const std::size_t after = resident_bytes();
  if (before && touched && after) {
    MESSAGE("resident: " << before / 1024 << " KiB, after reading w " << touched / 1024 << " KiB, after replacing it " << after / 1024 << " KiB");
    CHECK(touched >= before + 12 * 1024 * 1024);
    CHECK(after + 12 * 1024 * 1024 <= touched);
  }
  // w2 starts inside w's last page: its bytes are all still there.
  const auto v = g.find_value("w2")->initializer()->view<const float>();
  bool same = true;
  for (std::size_t i = 0; i < v.size(); ++i) same = same && v[i] == -static_cast<float>(i);
  CHECK(same);
  const auto b = g.find_value("b")->initializer()->view<const float>();
  CHECK((b[0] == 1.f && b[1] == 2.f));
}
