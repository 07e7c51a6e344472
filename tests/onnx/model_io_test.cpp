#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>

#include "quench/onnx/model_io.hpp"

namespace fs = std::filesystem;
namespace qo = quench::onnx;
using quench::dim;

namespace {
fs::path scratch(const std::string& name) {
  fs::path d = fs::path(QUENCH_TEST_BINARY_DIR) / "model_io_test" / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// y = MatMul(x, w) + b, with a 64 KiB weight.
quench::model small_model() {
  quench::model m;
  m.set_opset("", 17);
  m.producer_name = "quench-test";
  m.metadata_props.emplace_back("author", "tests");
  auto& g = m.main_graph();
  g.set_name("mm");
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{{}, "batch"}, dim{128, {}}});
  quench::tensor w(quench::dtype::float32, {128, 128}, "w");
  auto wv = w.view<float>();
  for (std::size_t i = 0; i < wv.size(); ++i) wv[i] = static_cast<float>(i % 97) * 0.01f;
  auto& wval = g.add_initializer(std::move(w));
  auto& mm = g.add_node("MatMul", {&x, &wval}, {"y"}, "matmul");
  g.add_output(*mm.output(0));
  return m;
}
}  // namespace

TEST_CASE("save and load through a buffer and a stream") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{2, {}}});
  auto& r = g.add_node("Relu", {&x}, {"y"}, "relu");
  g.add_output(*r.output(0));
  const std::string bytes = qo::save_model_buffer(m);
  auto back = qo::load_model_buffer(bytes.data(), bytes.size());
  CHECK(back.opset() == 13);
  CHECK(back.main_graph().node_count() == 1);
  CHECK(back.main_graph().inputs()[0]->dims()->at(0).value == 2);
  std::istringstream in(bytes);
  auto again = qo::load_model_stream(in);
  CHECK(qo::save_model_buffer(again) == bytes);
}

TEST_CASE("external data: written above a threshold, mapped on load, byte-identical again") {
  const fs::path dir = scratch("external");
  quench::model m;
  m.set_opset("", 17);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, std::vector<dim>{dim{1, {}}, dim{256, {}}});
  quench::tensor w(quench::dtype::float32, {256, 256}, "w");
  auto wv = w.view<float>();
  for (std::size_t i = 0; i < wv.size(); ++i) wv[i] = static_cast<float>(i);
  auto& wval = g.add_initializer(std::move(w));
  auto& small = g.add_initializer(quench::tensor::from<float>({2}, {1.f, 2.f}, "small"));
  auto& mm = g.add_node("MatMul", {&x, &wval}, {"y"});
  auto& add = g.add_node("Add", {mm.output(0), &small}, {"z"});
  g.add_output(*add.output(0));

  qo::save_options opts;
  opts.external_threshold = 1024;
  qo::save_model(m, dir / "model.onnx", opts);
  CHECK(fs::exists(dir / "model.onnx.data"));
  CHECK(fs::file_size(dir / "model.onnx.data") == 256 * 256 * 4);
  CHECK(fs::file_size(dir / "model.onnx") < 4096);

  auto loaded = qo::load_model(dir / "model.onnx");
  const quench::value* w2 = loaded.main_graph().find_value("w");
  REQUIRE(w2);
  CHECK(w2->initializer_encoding() == quench::tensor_encoding::external);
  CHECK(w2->initializer()->is_read_only());  // a view of the mapping, not a copy
  const quench::tensor& wt = *w2->initializer();
  CHECK(wt.view<float>()[65535] == 65535.f);
  CHECK(loaded.main_graph().find_value("small")->initializer_encoding() == quench::tensor_encoding::raw);

  // Saving again (to the same path, while its data is mapped) writes the same bytes.
  const std::string model_bytes = slurp(dir / "model.onnx");
  const std::string data_bytes = slurp(dir / "model.onnx.data");
  qo::save_model(loaded, dir / "model.onnx");
  CHECK(slurp(dir / "model.onnx") == model_bytes);
  CHECK(slurp(dir / "model.onnx.data") == data_bytes);

  // Inline everything: the buffer holds the weights and loads without a directory.
  const std::string inline_bytes = qo::save_model_buffer(loaded);
  CHECK(inline_bytes.size() > 256 * 256 * 4);
  auto inl = qo::load_model_buffer(inline_bytes.data(), inline_bytes.size());
  CHECK(inl.main_graph().find_value("w")->initializer()->nbytes() == 256 * 256 * 4);
}

TEST_CASE("external data outside the model directory, missing or short is refused") {
  const fs::path dir = scratch("external_bad");
  quench::model m;
  m.set_opset("", 17);
  auto& g = m.main_graph();
  quench::tensor w(quench::dtype::float32, {64, 64}, "w");
  auto& wval = g.add_initializer(std::move(w));
  auto& id = g.add_node("Identity", {&wval}, {"y"});
  g.add_output(*id.output(0));
  qo::save_options opts;
  opts.external_threshold = 1;
  qo::save_model(m, dir / "m.onnx", opts);

  auto rewrite_location = [&](const std::string& location, const std::string& length) {
    ::ONNX_NAMESPACE::ModelProto mp;
    REQUIRE(mp.ParseFromString(slurp(dir / "m.onnx")));
    auto* t = mp.mutable_graph()->mutable_initializer(0);
    for (auto& kv : *t->mutable_external_data()) {
      if (kv.key() == "location") kv.set_value(location);
      if (kv.key() == "length" && !length.empty()) kv.set_value(length);
    }
    std::ofstream(dir / "bad.onnx", std::ios::binary) << mp.SerializeAsString();
  };
  rewrite_location("../m.onnx.data", "");
  CHECK_THROWS_WITH(qo::load_model(dir / "bad.onnx"), doctest::Contains("leaves the model directory"));
  rewrite_location("/etc/passwd", "");
  CHECK_THROWS_WITH(qo::load_model(dir / "bad.onnx"), doctest::Contains("must be a relative path"));
  rewrite_location("missing.data", "");
  CHECK_THROWS_WITH(qo::load_model(dir / "bad.onnx"), doctest::Contains("cannot"));
  rewrite_location("m.onnx.data", "12");
  CHECK_THROWS_WITH(qo::load_model(dir / "bad.onnx"), doctest::Contains("does not match"));
  fs::resize_file(dir / "m.onnx.data", 100);
  CHECK_THROWS_WITH(qo::load_model(dir / "m.onnx"), doctest::Contains("beyond the end"));
  fs::create_symlink("/etc/hostname", dir / "link.data");
  rewrite_location("link.data", "");
  CHECK_THROWS_WITH(qo::load_model(dir / "bad.onnx"), doctest::Contains("outside the model directory"));
  // A string tensor stored externally (a fuzz finding: it loaded, then its saved form did not).
  fs::resize_file(dir / "m.onnx.data", 64 * 64 * 4);
  ::ONNX_NAMESPACE::ModelProto mp;
  REQUIRE(mp.ParseFromString(slurp(dir / "m.onnx")));
  mp.mutable_graph()->mutable_initializer(0)->set_data_type(::ONNX_NAMESPACE::TensorProto::STRING);
  std::ofstream(dir / "bad.onnx", std::ios::binary) << mp.SerializeAsString();
  CHECK_THROWS_WITH(qo::load_model(dir / "bad.onnx"), doctest::Contains("string tensors are not supported"));
}

TEST_CASE("fields quench does not model survive: unknown fields, functions, metadata, float8 and int4") {
  ::ONNX_NAMESPACE::ModelProto mp;
  mp.set_ir_version(9);
  auto* op = mp.add_opset_import();
  op->set_domain("");
  op->set_version(21);
  auto* op2 = mp.add_opset_import();
  op2->set_domain("com.example");
  op2->set_version(1);
  mp.set_producer_name("hand");
  auto* md = mp.add_metadata_props();
  md->set_key("k");
  md->set_value("v");
  auto* fn = mp.add_functions();
  fn->set_name("MyFn");
  fn->set_domain("com.example");
  auto* g = mp.mutable_graph();
  g->set_name("g");
  for (int type : {17, 18, 19, 20, 21, 22}) {
    auto* t = g->add_initializer();
    t->set_name("t" + std::to_string(type));
    t->set_data_type(type);
    t->add_dims(3);
    t->set_raw_data(std::string(type >= 21 ? 2 : 3, '\x35'));
  }
  auto* n = g->add_node();
  n->set_op_type("MyFn");
  n->set_domain("com.example");
  n->add_input("t17");
  n->add_output("y");
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(17);
  std::string bytes = mp.SerializeAsString();
  // An unknown field (number 1000, varint 7) at the end of the ModelProto.
  bytes += std::string("\xc0\x3e\x07", 3);

  auto m = qo::load_model_buffer(bytes.data(), bytes.size());
  CHECK(m.opset("com.example") == 1);
  CHECK(m.main_graph().find_value("t22")->initializer()->dtype() == quench::dtype::int4);
  CHECK(m.main_graph().find_value("t17")->initializer()->dtype() == quench::dtype::float8e4m3fn);
  CHECK(qo::save_model_buffer(m) == bytes);
}

TEST_CASE("bad input is a quench::error, never a crash") {
  const auto m = small_model();
  const std::string good = qo::save_model_buffer(m);
  SUBCASE("truncated at every 97th byte") {
    for (std::size_t cut = 1; cut < good.size(); cut += 97) {
      CAPTURE(cut);
      try {
        auto r = qo::load_model_buffer(good.data(), cut);
        (void)r;  // a prefix can happen to parse; then it must be a consistent graph
      } catch (const quench::error&) {
      }
    }
  }
  SUBCASE("random bytes") {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 200; ++trial) {
      std::string junk(static_cast<std::size_t>(rng() % 512), '\0');
      for (auto& c : junk) c = static_cast<char>(rng());
      try {
        auto r = qo::load_model_buffer(junk.data(), junk.size());
        r.main_graph().check_invariants();
      } catch (const quench::error&) {
      }
    }
  }
  auto mutate = [&](auto&& edit) {
    ::ONNX_NAMESPACE::ModelProto mp;
    REQUIRE(mp.ParseFromString(good));
    edit(mp);
    const std::string s = mp.SerializeAsString();
    return [s] { return qo::load_model_buffer(s.data(), s.size()); };
  };
  CHECK_THROWS_WITH(mutate([](auto& mp) { mp.mutable_graph()->mutable_node(0)->set_input(0, "nowhere"); })(),
                    doctest::Contains("consumes undefined value 'nowhere'"));
  CHECK_THROWS_WITH(mutate([](auto& mp) { mp.mutable_graph()->mutable_node(0)->set_output(0, "x"); })(),
                    doctest::Contains("duplicate value name 'x'"));
  CHECK_THROWS_WITH(mutate([](auto& mp) { mp.mutable_graph()->mutable_initializer(0)->set_dims(0, -4); })(),
                    doctest::Contains("negative dimension"));
  CHECK_THROWS_WITH(mutate([](auto& mp) { mp.clear_opset_import(); })(), doctest::Contains("has no opset import"));
  CHECK_THROWS_WITH(mutate([](auto& mp) { mp.mutable_graph()->mutable_initializer(0)->set_data_type(14); })(),
                    doctest::Contains("not supported"));
  CHECK_THROWS_WITH(mutate([](auto& mp) { mp.mutable_graph()->mutable_initializer(0)->mutable_raw_data()->resize(5); })(),
                    doctest::Contains("bytes of raw_data"));
  CHECK_THROWS_AS(qo::load_model("/nonexistent/model.onnx"), quench::error);
}

TEST_CASE("saving never leaves a half-written file") {
  const fs::path dir = scratch("atomic");
  auto m = small_model();
  qo::save_model(m, dir / "m.onnx");
  const std::string before = slurp(dir / "m.onnx");
  // A model that cannot be serialized (an attribute tensor holding a string dtype is impossible,
  // so use an unwritable location instead): the old file stays.
  CHECK_THROWS_AS(qo::save_model(m, dir / "no_such_dir" / "m.onnx"), quench::error);
  CHECK(slurp(dir / "m.onnx") == before);
}
