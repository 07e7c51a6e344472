// convert_float16 / convert_bfloat16 (quench/pipeline/float16.hpp) on small graphs built here.
// The torch-exported networks in ONNX Runtime, external data and byte-for-byte idempotence are in
// tests/e2e/float16_e2e_test.cpp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <ios>
#include <random>
#include <string>
#include <vector>

#include "quench/pipeline/float16.hpp"
#include "quench/runtime/executor.hpp"

using quench::attribute;
using quench::dim;
using quench::dtype;
using quench::tensor;
namespace qp = quench::pipeline;

namespace {

tensor random_tensor(quench::shape s, const std::string& name, std::uint32_t seed, float spread = 1.f) {
  tensor t(dtype::float32, std::move(s), name);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, spread);
  for (auto& v : t.view<float>()) v = n(rng);
  return t;
}

tensor scalar(float x, const std::string& name) {
  tensor t(dtype::float32, {}, name);
  t.view<float>()[0] = x;
  return t;
}

std::vector<dim> dims(std::initializer_list<std::int64_t> d) {
  std::vector<dim> out;
  for (auto x : d) out.push_back(dim{x, {}});
  return out;
}

/// x [2, 8] -> MatMul(W [8, 4]) -> Add(b [4]) -> Relu -> y
quench::model mlp(std::int64_t opset = 13) {
  quench::model m;
  m.set_opset("", opset);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({2, 8}));
  auto& w = g.add_initializer(random_tensor({8, 4}, "W", 1));
  auto& b = g.add_initializer(random_tensor({4}, "b", 2));
  auto& mm = g.add_node("MatMul", {&x, &w}, {"h"}, "matmul");
  auto& add = g.add_node("Add", {mm.output(0), &b}, {"a"}, "add");
  auto& relu = g.add_node("Relu", {add.output(0)}, {"y"}, "relu");
  g.add_output(*relu.output(0));
  return m;
}

std::size_t count_op(const quench::graph& g, const std::string& op) {
  std::size_t n = 0;
  for (const quench::node* x : g.nodes()) n += x->op_type() == op;
  return n;
}

const quench::node* producer(const quench::graph& g, const std::string& value) {
  const quench::value* v = g.find_value(value);
  return v ? v->producer() : nullptr;
}

bool is_blocked(const qp::float16_report& r, const std::string& node, const std::string& reason_part = {}) {
  for (const auto& b : r.blocked)
    if (b.node == node && b.reason.find(reason_part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("convert_float16: initializers, inputs and outputs become float16, no Casts in between") {
  auto m = mlp();
  const auto ref = mlp();
  const auto r = qp::convert_float16(m);
  const auto& g = m.main_graph();
  g.check_invariants();
  CHECK(r.initializers_converted == 2);
  CHECK(r.nodes_converted == 3);
  CHECK(r.casts_inserted == 0);
  CHECK(r.values_retyped == 2);
  CHECK(r.blocked.empty());
  CHECK(r.bytes_before == 2 * r.bytes_after);
  CHECK(g.find_value("x")->elem_type() == 10);
  CHECK(g.find_value("y")->elem_type() == 10);
  const tensor& w = *g.find_value("W")->initializer();
  REQUIRE(w.dtype() == dtype::float16);
  const auto w0 = ref.main_graph().find_value("W")->initializer()->view<float>();
  for (std::size_t i = 0; i < w0.size(); ++i) CHECK(w.view<quench::float16>()[i].bits() == quench::float16(w0[i]).bits());
}

TEST_CASE("convert_float16: keep_io_types keeps float32 inputs and outputs behind Casts, output names unchanged") {
  auto m = mlp();
  qp::float16_options opt;
  opt.keep_io_types = true;
  const auto r = qp::convert_float16(m, opt);
  const auto& g = m.main_graph();
  g.check_invariants();
  CHECK(r.casts_inserted == 2);
  CHECK(g.find_value("x")->elem_type() == 1);
  REQUIRE(g.outputs().size() == 1);
  CHECK(g.outputs()[0]->name() == "y");
  CHECK(g.outputs()[0]->elem_type() == 1);
  const quench::node* out_cast = producer(g, "y");
  REQUIRE(out_cast != nullptr);
  CHECK(out_cast->op_type() == "Cast");
  CHECK(out_cast->attr_int("to", 0) == 1);
  CHECK(out_cast->input(0)->elem_type() == 10);
  const quench::node* mm = producer(g, "h");
  CHECK(mm->input(0)->producer()->op_type() == "Cast");
  CHECK(mm->input(0)->producer()->attr_int("to", 0) == 10);
  // Nodes stay in a valid order: the input Cast (appended) runs before the MatMul.
  const auto nodes = g.nodes();
  CHECK(std::find(nodes.begin(), nodes.end(), mm->input(0)->producer()) < std::find(nodes.begin(), nodes.end(), mm));
}

TEST_CASE("convert_float16: converting a converted model changes nothing") {
  for (bool keep_io : {false, true}) {
    CAPTURE(keep_io);
    auto m = mlp();
    qp::float16_options opt;
    opt.keep_io_types = keep_io;
    opt.node_block_list = {"add"};
    const auto first = qp::convert_float16(m, opt);
    CHECK(first.casts_inserted > 0);
    const std::size_t nodes = m.main_graph().node_count();
    REQUIRE(m.metadata_props.size() == 1);
    CHECK(m.metadata_props[0].first == "quench.half.float32_nodes");
    CHECK(m.metadata_props[0].second == "add");
    // The second run does not get the first one's options: the metadata says what it blocked.
    // Without the metadata, the Casts around the node say so.
    for (bool metadata : {true, false}) {
      CAPTURE(metadata);
      if (!metadata) m.metadata_props.clear();
      qp::float16_options again;
      again.keep_io_types = keep_io;
      const auto second = qp::convert_float16(m, again);
      CHECK(second.initializers_converted == 0);
      CHECK(second.constants_converted == 0);
      CHECK(second.nodes_converted == 0);
      CHECK(second.casts_inserted == 0);
      CHECK(second.casts_removed == 0);
      CHECK(second.values_retyped == 0);
      CHECK(m.main_graph().node_count() == nodes);
      CHECK(is_blocked(second, "add", metadata ? "kept float32 by the conversion" : "already float32"));
      if (metadata) CHECK(m.metadata_props[0].second == "add");
    }
  }
}

TEST_CASE("convert_float16: Resize keeps float32 scales and roi; Range and shape arithmetic stay float32") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 2, 4, 4}));
  auto& roi = g.add_initializer(tensor(dtype::float32, {0}, "roi"));
  auto& scales = g.add_initializer(tensor::from<float>({4}, {1.f, 1.f, 2.f, 2.f}, "scales"));
  auto& rs = g.add_node("Resize", {&x, &roi, &scales}, {"r"}, "resize");
  rs.set_attribute(attribute::make_string("mode", "linear"));
  // Shape -> Gather -> Cast(float) -> Sqrt: a float computed from a shape.
  auto& shp = g.add_node("Shape", {rs.output(0)}, {"s"}, "shape");
  auto& idx = g.add_initializer(tensor::from<std::int64_t>({}, {3}, "idx"));
  auto& gat = g.add_node("Gather", {shp.output(0), &idx}, {"w"}, "gather");
  auto& cst = g.add_node("Cast", {gat.output(0)}, {"wf"}, "cast");
  cst.set_attribute(attribute::make_int("to", 1));
  auto& sq = g.add_node("Sqrt", {cst.output(0)}, {"sw"}, "sqrt");
  auto& div = g.add_node("Div", {rs.output(0), sq.output(0)}, {"d"}, "div");
  // Range of floats, added to the data.
  auto& start = g.add_initializer(scalar(0.f, "start"));
  auto& limit = g.add_initializer(scalar(8.f, "limit"));
  auto& delta = g.add_initializer(scalar(1.f, "delta"));
  auto& range = g.add_node("Range", {&start, &limit, &delta}, {"ramp"}, "range");
  auto& add = g.add_node("Add", {div.output(0), range.output(0)}, {"y"}, "add");
  g.add_output(*add.output(0));

  const auto r = qp::convert_float16(m);
  g.check_invariants();
  CHECK(rs.input(0)->elem_type() == 10);
  CHECK(rs.input(2) == &scales);
  CHECK(scales.initializer()->dtype() == dtype::float32);
  CHECK(roi.initializer()->dtype() == dtype::float32);
  CHECK(rs.output(0)->elem_type() == 10);
  CHECK(cst.attr_int("to", 0) == 1);
  CHECK(is_blocked(r, "cast", "computes a shape"));
  CHECK(is_blocked(r, "sqrt", "computes a shape"));
  CHECK(is_blocked(r, "range", "op block list"));
  CHECK(start.initializer()->dtype() == dtype::float32);
  // The half readers of float32 values go through Casts.
  CHECK(div.input(1)->producer()->op_type() == "Cast");
  CHECK(add.input(1)->producer()->op_type() == "Cast");
  CHECK(add.output(0)->elem_type() == 10);
  CHECK(r.casts_inserted == 2);
}

TEST_CASE("convert_float16: a constant beyond 65504 keeps its reader float32, or is clamped and counted") {
  auto build = [] {
    quench::model m;
    m.set_opset("", 13);
    auto& g = m.main_graph();
    auto& x = g.add_input("x", 1, dims({2, 3}));
    auto& var = g.add_initializer(tensor::from<float>({3}, {1.f, 9.8e7f, 2.f}, "var"));
    auto& mul = g.add_node("Mul", {&x, &var}, {"m"}, "mul");
    auto& relu = g.add_node("Relu", {mul.output(0)}, {"y"}, "relu");
    g.add_output(*relu.output(0));
    return m;
  };
  SUBCASE("keep_float32 (default)") {
    auto m = build();
    const auto r = qp::convert_float16(m);
    const auto& g = m.main_graph();
    g.check_invariants();
    CHECK(is_blocked(r, "mul", "9.8e+07"));
    CHECK(g.find_value("var")->initializer()->dtype() == dtype::float32);
    REQUIRE(r.out_of_range.size() == 1);
    CHECK(r.out_of_range[0].tensor == "var");
    CHECK(r.out_of_range[0].overflow == 1);
    CHECK(r.out_of_range[0].kept_float32);
    CHECK(r.values_clamped == 0);
    CHECK(producer(g, "m")->input(0)->producer()->op_type() == "Cast");  // x (half) -> float32
    CHECK(producer(g, "y")->op_type() == "Relu");
    CHECK(g.find_value("y")->elem_type() == 10);
  }
  SUBCASE("clamp") {
    auto m = build();
    qp::float16_options opt;
    opt.overflow = qp::half_overflow::clamp;
    const auto r = qp::convert_float16(m, opt);
    CHECK(r.blocked.empty());
    CHECK(r.values_clamped == 1);
    const tensor& var = *m.main_graph().find_value("var")->initializer();
    REQUIRE(var.dtype() == dtype::float16);
    CHECK(var.view<quench::float16>()[1].bits() == 0x7bff);  // 65504
    CHECK(var.view<quench::float16>()[0].bits() == 0x3c00);
  }
}

TEST_CASE("convert_float16: tiny constants become the smallest subnormal, zero or the smallest normal, counted") {
  const std::pair<qp::half_underflow, std::uint16_t> cases[] = {
      {qp::half_underflow::smallest_subnormal, 0x8001}, {qp::half_underflow::zero, 0x8000}, {qp::half_underflow::smallest_normal, 0x8400}};
  for (const auto& [policy, bits] : cases) {
    quench::model m;
    m.set_opset("", 13);
    auto& g = m.main_graph();
    auto& x = g.add_input("x", 1, dims({3}));
    auto& eps = g.add_initializer(tensor::from<float>({3}, {-1e-12f, 0.f, 1e-3f}, "eps"));
    auto& add = g.add_node("Add", {&x, &eps}, {"y"});
    g.add_output(*add.output(0));
    qp::float16_options opt;
    opt.underflow = policy;
    const auto r = qp::convert_float16(m, opt);
    CHECK(r.values_underflow == 1);
    const auto h = g.find_value("eps")->initializer()->view<quench::float16>();
    CHECK(h[0].bits() == bits);
    CHECK(h[1].bits() == 0);  // a real zero stays zero
    CHECK(h[2].bits() == quench::float16(1e-3f).bits());
  }
}

TEST_CASE("convert_float16: Constant values, Cast to float and ConstantOfShape follow their readers") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({2, 3}));
  auto& ids = g.add_input("ids", 7, dims({2, 3}));
  auto& c = g.add_node("Constant", {}, {"half"}, "const");
  c.set_attribute(attribute::make_float("value_float", 0.5f));
  auto& mul = g.add_node("Mul", {&x, c.output(0)}, {"m"}, "mul");
  auto& idf = g.add_node("Cast", {&ids}, {"idf"}, "ids_to_float");
  idf.set_attribute(attribute::make_int("to", 1));
  auto& add = g.add_node("Add", {mul.output(0), idf.output(0)}, {"a"}, "add");
  auto& shp = g.add_initializer(tensor::from<std::int64_t>({2}, {2, 3}, "shape"));
  auto& zeros = g.add_node("ConstantOfShape", {&shp}, {"z"}, "zeros");
  auto& y = g.add_node("Add", {add.output(0), zeros.output(0)}, {"y"}, "add2");
  g.add_output(*y.output(0));

  const auto r = qp::convert_float16(m);
  g.check_invariants();
  CHECK(r.casts_inserted == 0);
  CHECK(r.constants_converted == 1);
  const attribute* v = c.find_attribute("value");
  REQUIRE(v != nullptr);
  REQUIRE(v->t != nullptr);
  CHECK(v->t->dtype() == dtype::float16);
  CHECK(v->t->rank() == 0);
  CHECK(c.find_attribute("value_float") == nullptr);
  CHECK(idf.attr_int("to", 0) == 10);
  const attribute* zv = zeros.find_attribute("value");
  REQUIRE(zv != nullptr);
  CHECK(zv->t->dtype() == dtype::float16);
  CHECK(g.find_value("ids")->elem_type() == 7);  // integer paths are untouched
}

TEST_CASE("convert_float16: a Cast to half and back is removed, a Cast made a no-op is removed") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({4}));
  auto& noop = g.add_node("Cast", {&x}, {"xf"}, "noop");  // float32 -> float32
  noop.set_attribute(attribute::make_int("to", 1));
  auto& relu = g.add_node("Relu", {noop.output(0)}, {"y"}, "relu");
  g.add_output(*relu.output(0));
  const auto r = qp::convert_float16(m);
  g.check_invariants();
  CHECK(count_op(g, "Cast") == 0);
  CHECK(r.casts_removed == r.casts_inserted + 1);
  CHECK(producer(g, "y")->input(0)->name() == "x");
}

TEST_CASE("convert_float16: existing float16 parts stay consistent") {
  // x -> Cast(float16) -> Relu (float16) -> Cast(float) -> Sigmoid -> y: the float32 tail after
  // the model's own Cast is the model's choice and stays float32.
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({4}));
  auto& c1 = g.add_node("Cast", {&x}, {"xh"}, "to_half");
  c1.set_attribute(attribute::make_int("to", 10));
  auto& relu = g.add_node("Relu", {c1.output(0)}, {"rh"}, "relu");
  auto& c2 = g.add_node("Cast", {relu.output(0)}, {"rf"}, "to_float");
  c2.set_attribute(attribute::make_int("to", 1));
  auto& sig = g.add_node("Sigmoid", {c2.output(0)}, {"y"}, "sigmoid");
  g.add_output(*sig.output(0));
  qp::float16_options opt;
  opt.keep_io_types = true;
  const auto r = qp::convert_float16(m, opt);
  g.check_invariants();
  CHECK(r.nodes_converted == 0);
  CHECK(r.casts_inserted == 0);
  CHECK(is_blocked(r, "sigmoid", "already float32"));
  CHECK(count_op(g, "Cast") == 2);
  CHECK(producer(g, "rh")->input(0)->name() == "xh");
  CHECK(g.find_value("y")->elem_type() == 1);
}

TEST_CASE("convert_float16: QDQ scales stay float32 and DequantizeLinear readers stay float32") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({1, 2, 4, 4}));
  auto& s = g.add_initializer(scalar(0.05f, "s"));
  auto& zp = g.add_initializer(tensor(dtype::int8, {}, "zp"));
  auto& q = g.add_node("QuantizeLinear", {&x, &s, &zp}, {"q"}, "q");
  auto& dq = g.add_node("DequantizeLinear", {q.output(0), &s, &zp}, {"dq"}, "dq");
  auto& w = g.add_initializer(random_tensor({3, 2, 1, 1}, "W", 3));
  auto& conv = g.add_node("Conv", {dq.output(0), &w}, {"c"}, "conv");
  auto& relu = g.add_node("Relu", {conv.output(0)}, {"y"}, "relu");
  g.add_output(*relu.output(0));
  const auto r = qp::convert_float16(m);
  g.check_invariants();
  CHECK(s.initializer()->dtype() == dtype::float32);
  CHECK(w.initializer()->dtype() == dtype::float32);
  CHECK(is_blocked(r, "q", "block list"));
  CHECK(is_blocked(r, "dq", "block list"));
  CHECK(is_blocked(r, "conv", "DequantizeLinear"));
  CHECK(q.input(0)->producer()->op_type() == "Cast");  // x is float16 now
  CHECK(relu.input(0)->producer()->op_type() == "Cast");
  CHECK(relu.output(0)->elem_type() == 10);
}

TEST_CASE("convert_float16: If branches and Loop bodies are converted with the node") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& cond = g.add_input("cond", 9, dims({}));
  g.add_input("x", 1, dims({4}));
  auto& trip = g.add_input("trip", 7, dims({}));
  auto& iff = g.add_node("If", {&cond}, {"branch"}, "if");
  auto make_branch = [&](const char* name, const char* op, float k) {
    auto sub = std::make_unique<quench::graph>(&g, &iff);
    sub->set_name(name);
    auto& xr = sub->outer_ref("x");
    auto& c = sub->add_initializer(scalar(k, std::string(name) + "_k"));
    auto& n = sub->add_node(op, {&xr, &c}, {std::string(name) + "_out"}, std::string(name) + "_op");
    n.output(0)->set_elem_type(1);
    n.output(0)->set_dims(dims({4}));
    sub->add_output(*n.output(0));
    attribute a;
    a.name = name;
    a.type = quench::attribute_type::graph;
    a.g = std::move(sub);
    iff.attributes().push_back(std::move(a));
  };
  make_branch("then_branch", "Add", 1.f);
  make_branch("else_branch", "Mul", 2.f);
  // Loop: v <- v * 0.5 + x, trip times.
  auto& true_c = g.add_initializer(tensor::from<bool>({}, {true}, "true"));
  auto& loop = g.add_node("Loop", {&trip, &true_c, iff.output(0)}, {"v_final"}, "loop");
  {
    auto body = std::make_unique<quench::graph>(&g, &loop);
    body->set_name("body");
    body->add_input("i", 7, dims({}));
    auto& cin = body->add_input("c_in", 9, dims({}));
    auto& vin = body->add_input("v_in", 1, dims({4}));
    auto& half = body->add_initializer(scalar(0.5f, "half"));
    auto& mul = body->add_node("Mul", {&vin, &half}, {"vm"}, "body_mul");
    auto& add = body->add_node("Add", {mul.output(0), &body->outer_ref("x")}, {"v_out"}, "body_add");
    auto& cout = body->add_node("Identity", {&cin}, {"c_out"}, "body_cond");
    body->add_output(*cout.output(0));
    body->add_output(*add.output(0));
    cout.output(0)->set_elem_type(9);
    add.output(0)->set_elem_type(1);
    attribute a;
    a.name = "body";
    a.type = quench::attribute_type::graph;
    a.g = std::move(body);
    loop.attributes().push_back(std::move(a));
  }
  g.add_output(*loop.output(0));
  g.check_invariants();

  SUBCASE("converted") {
    const auto r = qp::convert_float16(m);
    g.check_invariants();
    CHECK(r.casts_inserted == 0);
    CHECK(r.initializers_converted == 3);
    for (const quench::graph* sub : iff.subgraphs()) {
      CHECK(sub->outputs()[0]->elem_type() == 10);
      CHECK(sub->initializers()[0]->initializer()->dtype() == dtype::float16);
    }
    const quench::graph& body = *loop.subgraphs()[0];
    CHECK(body.find_value("v_in")->elem_type() == 10);
    CHECK(body.find_value("v_out")->elem_type() == 10);
    CHECK(body.find_value("half")->initializer()->dtype() == dtype::float16);
    CHECK(g.find_value("v_final")->elem_type() == 10);
  }
  SUBCASE("a node inside a body blocked, a whole If blocked") {
    qp::float16_options opt;
    opt.node_block_list = {"body_add", "if"};
    const auto r = qp::convert_float16(m, opt);
    g.check_invariants();
    CHECK(is_blocked(r, "body_add", "node block list"));
    CHECK(is_blocked(r, "if", "node block list"));
    const quench::graph& body = *loop.subgraphs()[0];
    // Inside the body: Mul (half) -> Cast -> Add (float32) -> Cast -> v_out (half, as carried).
    const quench::node* add = producer(body, "v_out") ? producer(body, "v_out") : nullptr;
    CHECK(body.outputs()[1]->elem_type() == 10);
    CHECK(body.outputs()[1]->producer()->op_type() == "Cast");
    (void)add;
    // The blocked If reads x (now float16) through a Cast inside each branch, and stays float32.
    for (const quench::graph* sub : iff.subgraphs()) {
      CHECK(sub->outputs()[0]->elem_type() == 1);
      CHECK(sub->initializers()[0]->initializer()->dtype() == dtype::float32);
      const quench::node* op = sub->outputs()[0]->producer();
      CHECK(op->input(0)->producer()->op_type() == "Cast");
    }
    CHECK(loop.input(2)->producer()->op_type() == "Cast");  // If (float32) -> Loop (float16)
  }
}

TEST_CASE("convert_float16: automatic blocking keeps an overflowing intermediate in float32") {
  // y = Relu(x * 1000 / 2000): x * 1000 reaches 1e5, beyond 65504.
  auto build = [] {
    quench::model m;
    m.set_opset("", 13);
    auto& g = m.main_graph();
    auto& x = g.add_input("x", 1, dims({1, 16}));
    auto& k1 = g.add_initializer(scalar(1000.f, "k1"));
    auto& k2 = g.add_initializer(scalar(2000.f, "k2"));
    auto& mul = g.add_node("Mul", {&x, &k1}, {"big"}, "mul");
    auto& div = g.add_node("Div", {mul.output(0), &k2}, {"small"}, "div");
    auto& relu = g.add_node("Relu", {div.output(0)}, {"y"}, "relu");
    g.add_output(*relu.output(0));
    return m;
  };
  tensor x(dtype::float32, {1, 16}, "x");
  for (std::size_t i = 0; i < 16; ++i) x.view<float>()[i] = 70.f + 2.f * static_cast<float>(i);

  auto m = build();
  qp::float16_options opt;
  opt.auto_block.samples.push_back({{"x", &x}});
  const auto r = qp::convert_float16(m, opt);
  m.main_graph().check_invariants();
  REQUIRE(r.simulated_before.size() == 1);
  CHECK(r.simulated_before[0].nonfinite == 16);  // without the blocks: Inf everywhere
  CHECK(r.simulated_after[0].nonfinite == 0);
  CHECK(r.simulated_after[0].cosine > 0.99999);
  CHECK(r.simulated_after[0].max_rel_diff < 1e-3);
  CHECK(is_blocked(r, "mul", "output 'big' overflows float16"));
  CHECK(is_blocked(r, "div", "input 'big' overflows float16"));
  CHECK(!is_blocked(r, "relu"));
  CHECK(r.auto_blocked.size() == 2);

  // The same simulation of the plain conversion shows what it would do.
  auto plain = build();
  qp::float16_options none;
  const auto rp = qp::convert_float16(plain, none);
  CHECK(rp.blocked.empty());
}

TEST_CASE("convert_float16: bad input is refused before anything changes") {
  SUBCASE("opset too old") {
    auto m = mlp(5);
    CHECK_THROWS_WITH(qp::convert_float16(m), doctest::Contains("opset 6"));
    CHECK(m.main_graph().find_value("W")->initializer()->dtype() == dtype::float32);
  }
  SUBCASE("bfloat16 below opset 13") {
    auto m = mlp(12);
    CHECK_THROWS_WITH(qp::convert_bfloat16(m), doctest::Contains("opset 13"));
  }
  SUBCASE("auto-block samples that do not fit") {
    auto m = mlp();
    tensor wrong(dtype::float32, {2, 8});
    qp::float16_options opt;
    opt.auto_block.samples.push_back({{"nope", &wrong}});
    CHECK_THROWS_WITH(qp::convert_float16(m, opt), doctest::Contains("graph input 'x' is not given"));
    tensor ints(dtype::int32, {2, 8});
    opt.auto_block.samples = {{{"x", &ints}}};
    CHECK_THROWS_WITH(qp::convert_float16(m, opt), doctest::Contains("dtype_mismatch"));
    CHECK(m.main_graph().find_value("W")->initializer()->dtype() == dtype::float32);
    CHECK(m.main_graph().find_value("x")->elem_type() == 1);
  }
  SUBCASE("auto-block on a model the executor cannot run") {
    auto m = mlp();
    auto& g = m.main_graph();
    auto& odd = g.add_node("NoSuchOp", {g.find_value("y")}, {"z"}, "odd", "com.example");
    m.set_opset("com.example", 1);
    g.add_output(*odd.output(0));
    tensor x(dtype::float32, {2, 8});
    qp::float16_options opt;
    opt.auto_block.samples.push_back({{"x", &x}});
    CHECK_THROWS_WITH(qp::convert_float16(m, opt), doctest::Contains("cannot run"));
  }
}

TEST_CASE("convert_bfloat16: weights only by default, all compute on request") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({2, 8}));
  auto& w = g.add_initializer(random_tensor({8, 4}, "W", 1));
  auto& b = g.add_initializer(random_tensor({4}, "b", 2));
  auto& mm = g.add_node("MatMul", {&x, &w}, {"h"}, "matmul");
  auto& add = g.add_node("Add", {mm.output(0), &b}, {"y"}, "add");
  g.add_output(*add.output(0));
  SUBCASE("weights only") {
    const auto r = qp::convert_bfloat16(m);
    g.check_invariants();
    CHECK(r.compute == qp::half_compute::weights_only);
    CHECK(r.nodes_converted == 0);
    CHECK(r.blocked.empty());
    CHECK(w.initializer()->dtype() == dtype::bfloat16);
    CHECK(b.initializer()->dtype() == dtype::float32);  // 4 elements: not worth a Cast
    CHECK(g.find_value("x")->elem_type() == 1);
    CHECK(g.find_value("y")->elem_type() == 1);
    CHECK(mm.input(1)->producer()->op_type() == "Cast");
    CHECK(mm.input(1)->producer()->attr_int("to", 0) == 1);
    CHECK(r.casts_inserted == 1);
    // The executor runs it: bfloat16 storage, float32 compute.
    quench::runtime::executor ex(m);
    tensor in = random_tensor({2, 8}, "x", 5);
    const auto out = ex.run({{"x", &in}});
    CHECK(out[0].dtype() == dtype::float32);
  }
  SUBCASE("all") {
    qp::float16_options opt;
    opt.compute = qp::half_compute::all;
    const auto r = qp::convert_bfloat16(m, opt);
    g.check_invariants();
    CHECK(r.nodes_converted == 2);
    CHECK(w.initializer()->dtype() == dtype::bfloat16);
    CHECK(b.initializer()->dtype() == dtype::bfloat16);
    CHECK(g.find_value("x")->elem_type() == 16);
  }
  SUBCASE("the schema keeps Conv float32 in bfloat16") {
    quench::model c;
    c.set_opset("", 13);
    auto& cg = c.main_graph();
    auto& cx = cg.add_input("x", 1, dims({1, 2, 4, 4}));
    auto& cw = cg.add_initializer(random_tensor({3, 2, 1, 1}, "W", 3));
    auto& conv = cg.add_node("Conv", {&cx, &cw}, {"c"}, "conv");
    auto& relu = cg.add_node("Relu", {conv.output(0)}, {"y"}, "relu");
    cg.add_output(*relu.output(0));
    qp::float16_options opt;
    opt.compute = qp::half_compute::all;
    const auto r = qp::convert_bfloat16(c, opt);
    CHECK(is_blocked(r, "conv", "schema of Conv (opset 13) has no bfloat16"));
    CHECK(cw.initializer()->dtype() == dtype::float32);
    CHECK(relu.input(0)->producer()->op_type() == "Cast");
  }
}

TEST_CASE("convert_float16: out-of-range values are found anywhere in a large tensor, bits as the scalar conversion") {
  quench::model m;
  m.set_opset("", 13);
  auto& g = m.main_graph();
  auto& x = g.add_input("x", 1, dims({20000}));
  tensor w = random_tensor({20000}, "w", 9);
  auto wv = w.view<float>();
  wv[19999] = 1e-30f;   // last chunk: underflow
  wv[8192] = -3e-9f;    // first element of the second chunk
  wv[12345] = 7e4f;     // overflow, clamped
  const tensor ref = w.clone();
  auto& wi = g.add_initializer(std::move(w));
  auto& add = g.add_node("Add", {&x, &wi}, {"y"});
  g.add_output(*add.output(0));
  qp::float16_options opt;
  opt.overflow = qp::half_overflow::clamp;
  opt.underflow = qp::half_underflow::zero;
  const auto r = qp::convert_float16(m, opt);
  CHECK(r.values_clamped == 1);
  CHECK(r.values_underflow == 2);
  REQUIRE(r.out_of_range.size() == 1);
  CHECK(r.out_of_range[0].max_abs == 7e4f);
  const auto h = g.find_value("w")->initializer()->view<quench::float16>();
  const auto f = ref.view<float>();
  for (std::size_t i = 0; i < h.size(); ++i) {
    const std::uint16_t want = i == 12345 ? 0x7bff : quench::float16(f[i]).bits();
    if (h[i].bits() != want) FAIL_CHECK("element " << i << ": 0x" << std::hex << h[i].bits() << " != 0x" << want);
  }
}

TEST_CASE("convert_float16: the zero/Inf scan finds every lane, and nothing else") {
  for (std::uint16_t inf : {std::uint16_t{0x7c00}, std::uint16_t{0x7f80}}) {
    std::vector<std::uint16_t> h(13, 0x3c01);
    CHECK(!qp::detail::has_zero_or_inf(h.data(), h.size(), inf));
    for (std::size_t at = 0; at < h.size(); ++at)
      for (std::uint16_t special : {std::uint16_t{0x0000}, std::uint16_t{0x8000}, inf, static_cast<std::uint16_t>(inf | 0x8000)}) {
        auto g = h;
        g[at] = special;
        CHECK(qp::detail::has_zero_or_inf(g.data(), g.size(), inf));
      }
    // Neighbours of the patterns (smallest subnormal, largest finite, NaN) are not hits.
    std::vector<std::uint16_t> near{0x0001, 0x8001, static_cast<std::uint16_t>(inf - 1), static_cast<std::uint16_t>(inf + 1), 0x7fff, 0xffff};
    CHECK(!qp::detail::has_zero_or_inf(near.data(), near.size(), inf));
  }
}
