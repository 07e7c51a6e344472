// upgrade_opset on small hand-built graphs: the structure each rewrite leaves, the refusals, and
// (where quench's executor runs both versions) the same outputs before and after.
#include <doctest/doctest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "passes_test_util.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/upgrade_opset.hpp"
#include "quench/runtime/executor.hpp"

using namespace passes_test;
using quench::attribute;
using quench::graph;
using quench::model;
using quench::node;
namespace qp = quench::passes;

namespace {

constexpr std::int32_t f32 = 1;

using builder = std::function<void(model&)>;

model make(std::int64_t opset, const builder& build) {
  model m;
  m.set_opset("", opset);
  m.ir_version = opset >= 9 ? 4 : 3;
  build(m);
  m.main_graph().check_invariants();
  return m;
}

/// Deterministic inputs for every graph input without an initializer: floats in [-2, 2).
std::vector<quench::tensor> inputs_for(const model& m) {
  std::vector<quench::tensor> out;
  std::uint32_t state = 12345;
  for (const quench::value* v : m.main_graph().inputs()) {
    if (v->is_initializer()) continue;
    REQUIRE(v->static_shape());
    REQUIRE(v->dtype() == quench::dtype::float32);
    quench::tensor t(quench::dtype::float32, *v->static_shape(), v->name());
    for (float& x : t.view<float>()) {
      state = state * 1664525u + 1013904223u;
      x = static_cast<float>(state >> 8) / static_cast<float>(1u << 24) * 4.f - 2.f;
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<quench::tensor> run(const model& m, const std::vector<quench::tensor>& inputs) {
  quench::runtime::executor ex(m);
  std::unordered_map<std::string, const quench::tensor*> feeds;
  for (const auto& t : inputs) feeds[t.name()] = &t;
  return ex.run(feeds);
}

void check_same_outputs(const std::vector<quench::tensor>& want, const std::vector<quench::tensor>& got) {
  REQUIRE(want.size() == got.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    INFO("output " << i);
    REQUIRE(want[i].dtype() == got[i].dtype());
    REQUIRE(want[i].shape() == got[i].shape());
    if (want[i].dtype() != quench::dtype::float32) {
      CHECK(std::memcmp(want[i].bytes(), got[i].bytes(), want[i].nbytes()) == 0);
      continue;
    }
    const auto a = want[i].view<float>(), b = got[i].view<float>();
    for (std::size_t k = 0; k < a.size(); ++k) {
      INFO("element " << k);
      CHECK(b[k] == doctest::Approx(a[k]).epsilon(1e-6));
    }
  }
}

/// Builds the model twice, upgrades one to `target`, checks the invariants and, when `execute`,
/// that quench's executor gives the same outputs for both. Returns the upgraded model's report.
qp::upgrade_report upgrade_and_compare(std::int64_t opset, std::int64_t target, const builder& build, model& upgraded,
                                       bool execute = true) {
  model original = make(opset, build);
  upgraded = make(opset, build);
  const qp::upgrade_report r = qp::upgrade_opset(upgraded, target);
  upgraded.main_graph().check_invariants();
  CHECK(upgraded.opset("") == target);
  CHECK(r.from == opset);
  CHECK(r.to == target);
  for (const auto& line : r.changes) MESSAGE(line);
  if (execute) {
    const auto in = inputs_for(original);
    check_same_outputs(run(original, in), run(upgraded, in));
  }
  return r;
}

const node* only(const graph& g, const std::string& op) {
  const node* found = nullptr;
  for (const node* n : g.nodes())
    if (n->op_type() == op) {
      REQUIRE_MESSAGE(!found, "more than one " << op);
      found = n;
    }
  REQUIRE_MESSAGE(found, "no " << op);
  return found;
}

std::vector<std::int64_t> int64_data(const quench::value* v) { return data<std::int64_t>(v); }

/// True when the nodes are in an order where every input is produced before it is read.
bool topologically_sorted(const graph& g) {
  std::vector<const node*> seen;
  for (const node* n : g.nodes()) {
    for (const quench::value* v : n->inputs())
      if (v && v->producer() && std::find(seen.begin(), seen.end(), v->producer()) == seen.end()) return false;
    seen.push_back(n);
  }
  return true;
}

builder unary(const std::string& op, std::vector<std::int64_t> shape, std::function<void(node&)> set = {}) {
  return [op, shape, set](model& m) {
    graph& g = m.main_graph();
    std::vector<quench::dim> d;
    for (auto s : shape) d.push_back(quench::dim{s, {}});
    auto& x = g.add_input("x", f32, d);
    auto& n = g.add_node(op, {&x}, {"y"}, "n");
    if (set) set(n);
    g.add_output(*n.output(0));
  };
}

}  // namespace

TEST_CASE("upgrade_opset: Softmax family on a non-last axis becomes Flatten + op + Reshape") {
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) {
    CAPTURE(op);
    model m;
    // A consumer and a graph output on the same value: both must see the old name afterwards.
    const auto r = upgrade_and_compare(11, 13, [op](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({2, 3, 4, 5}));
      auto& sm = g.add_node(op, {&x}, {"y"}, "sm");
      sm.set_attribute(attribute::make_int("axis", 2));
      auto& neg = g.add_node("Neg", {sm.output(0)}, {"z"}, "neg");
      g.add_output(*sm.output(0));
      g.add_output(*neg.output(0));
    }, m);
    const graph& g = m.main_graph();
    CHECK(r.rewrites == 1);
    CHECK(r.rewritten.at(op) == 1);
    CHECK(r.moved == 1);  // Neg
    const node* flat = only(g, "Flatten");
    CHECK(flat->attr_int("axis", 0) == 2);
    const node* sm = only(g, op);
    CHECK(sm->name() == "sm");
    CHECK(sm->attr_int("axis", 0) == 1);
    CHECK(sm->input(0) == flat->output(0));
    const node* rs = only(g, "Reshape");
    CHECK(rs->output(0)->name() == "y");
    CHECK(rs->input(0) == sm->output(0));
    CHECK(rs->input(1)->producer()->op_type() == "Shape");
    CHECK(!rs->find_attribute("allowzero"));  // Reshape-13 has none
    CHECK(g.outputs()[0]->name() == "y");
    CHECK(only(g, "Neg")->input(0) == rs->output(0));
    CHECK(topologically_sorted(g));
  }
}

TEST_CASE("upgrade_opset: Softmax on the last axis only changes version") {
  SUBCASE("axis = rank - 1") {
    model m;
    const auto r = upgrade_and_compare(11, 13, unary("Softmax", {2, 3, 4}, [](node& n) {
      n.set_attribute(attribute::make_int("axis", 2));
    }), m);
    CHECK(r.rewrites == 0);
    CHECK(r.moved == 1);
    CHECK(m.main_graph().node_count() == 1);
    CHECK(only(m.main_graph(), "Softmax")->attr_int("axis", 0) == 2);
  }
  SUBCASE("axis = -1, rank unknown") {
    model m = make(12, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32);
      auto& n = g.add_node("LogSoftmax", {&x}, {"y"}, "n");
      n.set_attribute(attribute::make_int("axis", -1));
      g.add_output(*n.output(0));
    });
    const auto r = qp::upgrade_opset(m, 21);
    CHECK(r.rewrites == 0);
    CHECK(m.main_graph().node_count() == 1);
    CHECK(m.ir_version == 10);
  }
  SUBCASE("default axis 1 of a rank-2 input is written out") {
    model m;
    const auto r = upgrade_and_compare(9, 13, unary("Softmax", {3, 5}), m);
    CHECK(r.rewrites == 1);
    CHECK(only(m.main_graph(), "Softmax")->attr_int("axis", -1) == 1);
    CHECK(m.main_graph().node_count() == 1);
  }
  SUBCASE("rank unknown, default axis: the 2-D coercion is spelled out, allowzero from 14") {
    model m = make(9, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32);
      auto& n = g.add_node("Softmax", {&x}, {"y"}, "n");
      g.add_output(*n.output(0));
    });
    qp::upgrade_opset(m, 14);
    m.main_graph().check_invariants();
    CHECK(only(m.main_graph(), "Flatten")->attr_int("axis", 0) == 1);
    CHECK(only(m.main_graph(), "Reshape")->attr_int("allowzero", 0) == 1);
  }
  SUBCASE("the rank follows from the producers: a Reshape to a computed shape, then Transpose and Mul") {
    auto build = [](bool squeeze_all) {
      return [squeeze_all](model& mm) {
        graph& g = mm.main_graph();
        auto& x = g.add_input("x", f32, dims({2, 12}));
        auto& shape = g.add_input("shape", 7, dims({3}));  // rank known, values not
        auto& r = g.add_node("Reshape", {&x, &shape}, {"r"}, "reshape");
        auto& t = g.add_node("Transpose", {r.output(0)}, {"t"}, "transpose");
        t.set_attribute(attribute::make_ints("perm", {2, 0, 1}));
        auto& k = g.add_initializer(floats({}, {0.5f}, "k"));
        auto& mul = g.add_node("Mul", {t.output(0), &k}, {"m"}, "mul");
        quench::value* in = mul.output(0);
        if (squeeze_all) in = g.add_node("Squeeze", {in}, {"s"}, "squeeze").output(0);
        auto& sm = g.add_node("Softmax", {in}, {"y"}, "sm");
        sm.set_attribute(attribute::make_int("axis", 2));
        g.add_output(*sm.output(0));
      };
    };
    model m = make(11, build(false));
    qp::upgrade_opset(m, 13);
    CHECK(count_ops(m.main_graph(), "Flatten") == 0);
    // Squeeze without axes removes every size-1 axis: the rank is unknown again.
    model s = make(11, build(true));
    qp::upgrade_opset(s, 13);
    CHECK(count_ops(s.main_graph(), "Flatten") == 1);
  }
  SUBCASE("an axis outside the rank is an error naming the node") {
    model m = make(11, unary("Softmax", {2, 3}, [](node& n) { n.set_attribute(attribute::make_int("axis", 2)); }));
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 13), doctest::Contains("node 'n' (Softmax)"), quench::error);
  }
}

TEST_CASE("upgrade_opset: axes attributes become inputs") {
  SUBCASE("Unsqueeze and Squeeze at 13") {
    model m;
    const auto r = upgrade_and_compare(11, 13, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({3, 4}));
      auto& u = g.add_node("Unsqueeze", {&x}, {"u"}, "u");
      u.set_attribute(attribute::make_ints("axes", {0, -1}));
      auto& s = g.add_node("Squeeze", {u.output(0)}, {"s"}, "s");
      s.set_attribute(attribute::make_ints("axes", {0}));
      auto& all = g.add_node("Squeeze", {u.output(0)}, {"all"}, "all");
      g.add_output(*s.output(0));
      g.add_output(*all.output(0));
    }, m);
    const graph& g = m.main_graph();
    CHECK(r.rewrites == 2);
    CHECK(r.moved == 1);  // the Squeeze without axes
    const node* u = only(g, "Unsqueeze");
    CHECK(!u->find_attribute("axes"));
    CHECK(int64_data(u->input(1)) == std::vector<std::int64_t>{0, -1});
    CHECK(u->input(1)->name() == "u_axes");
    CHECK(int64_data(g.find_value("s")->producer()->input(1)) == std::vector<std::int64_t>{0});
    CHECK(g.find_value("all")->producer()->inputs().size() == 1);
  }
  SUBCASE("ReduceSum moves at 13, ReduceMean at 18") {
    auto build = [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({2, 3, 4}));
      auto& s = g.add_node("ReduceSum", {&x}, {"s"}, "rs");
      s.set_attribute(attribute::make_ints("axes", {1}));
      auto& mean = g.add_node("ReduceMean", {&x}, {"m"}, "rm");
      mean.set_attribute(attribute::make_ints("axes", {-1, 0}));
      mean.set_attribute(attribute::make_int("keepdims", 0));
      g.add_output(*s.output(0));
      g.add_output(*mean.output(0));
    };
    model m13;
    auto r = upgrade_and_compare(11, 13, build, m13);
    CHECK(r.rewritten.count("ReduceSum") == 1);
    CHECK(r.rewritten.count("ReduceMean") == 0);
    CHECK(only(m13.main_graph(), "ReduceMean")->find_attribute("axes"));
    model m18;
    r = upgrade_and_compare(11, 18, build, m18);
    const node* mean = only(m18.main_graph(), "ReduceMean");
    CHECK(!mean->find_attribute("axes"));
    CHECK(mean->attr_int("keepdims", 1) == 0);
    CHECK(int64_data(mean->input(1)) == std::vector<std::int64_t>{-1, 0});
  }
  SUBCASE("an initializer name already taken gets a suffix") {
    model m = make(11, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({3}));
      g.add_initializer(floats({1}, {1.f}, "u_axes"));
      auto& u = g.add_node("Unsqueeze", {&x}, {"y"}, "u");
      u.set_attribute(attribute::make_ints("axes", {0}));
      g.add_output(*u.output(0));
    });
    qp::upgrade_opset(m, 13);
    CHECK(only(m.main_graph(), "Unsqueeze")->input(1)->name() != "u_axes");
    m.main_graph().check_invariants();
  }
}

TEST_CASE("upgrade_opset: Split") {
  SUBCASE("split attribute -> input at 13, nothing more at 18") {
    model m;
    upgrade_and_compare(11, 18, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({2, 5}));
      auto& s = g.add_node("Split", {&x}, {"a", "b"}, "split");
      s.set_attribute(attribute::make_int("axis", 1));
      s.set_attribute(attribute::make_ints("split", {2, 3}));
      g.add_output(*s.output(0));
      g.add_output(*s.output(1));
    }, m);
    const node* s = only(m.main_graph(), "Split");
    CHECK(int64_data(s->input(1)) == std::vector<std::int64_t>{2, 3});
    CHECK(!s->find_attribute("num_outputs"));
  }
  SUBCASE("equal parts get num_outputs at 18") {
    model m;
    const auto r = upgrade_and_compare(9, 18, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({6, 2}));
      auto& s = g.add_node("Split", {&x}, {"a", "b", "c"}, "split");
      for (int i = 0; i < 3; ++i) g.add_output(*s.output(static_cast<std::size_t>(i)));
    }, m);
    CHECK(only(m.main_graph(), "Split")->attr_int("num_outputs", 0) == 3);
    CHECK(r.rewrites == 1);
  }
}

TEST_CASE("upgrade_opset: Clip, Slice, Pad and TopK attributes become inputs") {
  SUBCASE("Clip min and max") {
    model m;
    upgrade_and_compare(9, 13, unary("Clip", {4, 4}, [](node& n) {
      n.set_attribute(attribute::make_float("min", -0.5f));
      n.set_attribute(attribute::make_float("max", 1.25f));
    }), m);
    const node* c = only(m.main_graph(), "Clip");
    CHECK(c->attributes().empty());
    CHECK(data<float>(c->input(1)) == std::vector<float>{-0.5f});
    CHECK(data<float>(c->input(2)) == std::vector<float>{1.25f});
    CHECK(c->input(1)->initializer()->rank() == 0);
  }
  SUBCASE("Clip with max only leaves min empty") {
    model m;
    upgrade_and_compare(10, 11, unary("Clip", {8}, [](node& n) { n.set_attribute(attribute::make_float("max", 0.f)); }), m);
    const node* c = only(m.main_graph(), "Clip");
    REQUIRE(c->inputs().size() == 3);
    CHECK(c->input(1) == nullptr);
  }
  SUBCASE("Clip whose input type is unknown is refused, and the model stays as it was") {
    model m = make(9, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x");
      auto& u = g.add_node("Unsqueeze", {&x}, {"u"}, "u");
      u.set_attribute(attribute::make_ints("axes", {0}));
      auto& c = g.add_node("Clip", {u.output(0)}, {"y"}, "clip");
      c.set_attribute(attribute::make_float("min", 0.f));
      g.add_output(*c.output(0));
    });
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 13), doctest::Contains("node 'clip' (Clip)"), quench::error);
    CHECK(m.opset("") == 9);
    CHECK(only(m.main_graph(), "Unsqueeze")->find_attribute("axes"));  // checked before any change
    CHECK(m.main_graph().initializers().empty());
  }
  SUBCASE("Clip input type found through the producers") {
    model m = make(9, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", 11 /* double */, dims({3}));
      auto& r = g.add_node("Relu", {&x}, {"r"}, "relu");
      auto& c = g.add_node("Clip", {r.output(0)}, {"y"}, "clip");
      c.set_attribute(attribute::make_float("min", 0.f));
      g.add_output(*c.output(0));
    });
    qp::upgrade_opset(m, 11);
    const node* c = only(m.main_graph(), "Clip");
    CHECK(c->input(1)->initializer()->dtype() == quench::dtype::float64);
    // Clip-6's absent max is FLT_MAX, not the double maximum of Clip-11: written out.
    REQUIRE(c->inputs().size() == 3);
    CHECK(data<double>(c->input(2)) == std::vector<double>{static_cast<double>(FLT_MAX)});
  }
  SUBCASE("Slice") {
    model m;
    upgrade_and_compare(9, 13, unary("Slice", {4, 6}, [](node& n) {
      n.set_attribute(attribute::make_ints("starts", {1, 0}));
      n.set_attribute(attribute::make_ints("ends", {3, 1000}));
      n.set_attribute(attribute::make_ints("axes", {0, 1}));
    }), m);
    const node* s = only(m.main_graph(), "Slice");
    REQUIRE(s->inputs().size() == 4);
    CHECK(int64_data(s->input(1)) == std::vector<std::int64_t>{1, 0});
    CHECK(int64_data(s->input(2)) == std::vector<std::int64_t>{3, 1000});
    CHECK(int64_data(s->input(3)) == std::vector<std::int64_t>{0, 1});
  }
  SUBCASE("Pad with a constant value, and reflect") {
    for (const char* mode : {"constant", "reflect"}) {
      CAPTURE(mode);
      model m;
      upgrade_and_compare(9, 13, unary("Pad", {1, 2, 3, 3}, [mode](node& n) {
        n.set_attribute(attribute::make_string("mode", mode));
        n.set_attribute(attribute::make_ints("pads", {0, 0, 1, 2, 0, 0, 2, 1}));
        n.set_attribute(attribute::make_float("value", 1.5f));
      }), m);
      const node* p = only(m.main_graph(), "Pad");
      CHECK(int64_data(p->input(1)) == std::vector<std::int64_t>{0, 0, 1, 2, 0, 0, 2, 1});
      CHECK(p->inputs().size() == (std::string(mode) == "constant" ? 3u : 2u));
      CHECK(!p->find_attribute("pads"));
    }
  }
  SUBCASE("TopK") {
    model m;
    upgrade_and_compare(9, 13, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({3, 5}));
      auto& t = g.add_node("TopK", {&x}, {"v", "i"}, "topk");
      t.set_attribute(attribute::make_int("k", 2));
      g.add_output(*t.output(0));
      g.add_output(*t.output(1));
    }, m);
    CHECK(int64_data(only(m.main_graph(), "TopK")->input(1)) == std::vector<std::int64_t>{2});
  }
}

TEST_CASE("upgrade_opset: Upsample becomes Resize") {
  auto upsample7 = [](const char* mode) {
    return [mode](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({1, 2, 3, 4}));
      auto& u = g.add_node("Upsample", {&x}, {"y"}, "up");
      u.set_attribute(attribute::make_string("mode", mode));
      u.set_attribute(attribute::make_floats("scales", {1.f, 1.f, 2.f, 3.f}));
      g.add_output(*u.output(0));
    };
  };
  SUBCASE("Upsample-7 -> 9: scales input") {
    model m;
    upgrade_and_compare(7, 9, upsample7("nearest"), m);
    const node* u = only(m.main_graph(), "Upsample");
    CHECK(data<float>(u->input(1)) == std::vector<float>{1.f, 1.f, 2.f, 3.f});
    CHECK(m.ir_version == 4);
  }
  SUBCASE("Upsample-7 nearest -> 13: Resize asymmetric, floor, no roi") {
    model m;
    const auto r = upgrade_and_compare(7, 13, upsample7("nearest"), m);
    const node* z = only(m.main_graph(), "Resize");
    CHECK(z->name() == "up");
    CHECK(z->output(0)->name() == "y");
    CHECK(z->attr_string("coordinate_transformation_mode", "") == "asymmetric");
    CHECK(z->attr_string("nearest_mode", "") == "floor");
    REQUIRE(z->inputs().size() == 3);
    CHECK(z->input(1) == nullptr);
    CHECK(r.rewritten.at("Upsample") == 1);
  }
  SUBCASE("Upsample-9 linear -> 11: roi is an empty tensor") {
    model m;
    upgrade_and_compare(9, 11, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({1, 1, 3, 3}));
      auto& s = g.add_initializer(floats({4}, {1, 1, 2, 2}, "scales"));
      auto& u = g.add_node("Upsample", {&x, &s}, {"y"}, "up");
      u.set_attribute(attribute::make_string("mode", "linear"));
      g.add_output(*u.output(0));
    }, m);
    const node* z = only(m.main_graph(), "Resize");
    REQUIRE(z->inputs().size() == 3);
    REQUIRE(z->input(1));
    CHECK(z->input(1)->initializer()->size() == 0);
    CHECK(z->input(2)->name() == "scales");
    CHECK(!z->find_attribute("nearest_mode"));
  }
  SUBCASE("bilinear is spelled linear") {
    model m;
    upgrade_and_compare(7, 13, upsample7("bilinear"), m);
    CHECK(only(m.main_graph(), "Resize")->attr_string("mode", "") == "linear");
  }
}

TEST_CASE("upgrade_opset: Resize-10") {
  auto resize10 = [](std::vector<float> scales, bool constant) {
    return [scales, constant](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({1, 1, 4, 6}));
      quench::value* s = nullptr;
      if (constant) {
        quench::tensor t(quench::dtype::float32, {4}, "scales");
        std::copy(scales.begin(), scales.end(), t.view<float>().begin());
        s = &g.add_initializer(std::move(t));
      } else {
        s = &g.add_input("scales", f32, dims({4}));
      }
      auto& r = g.add_node("Resize", {&x, s}, {"y"}, "rs");
      g.add_output(*r.output(0));
    };
  };
  SUBCASE("downsampling rounds up") {
    model m;
    upgrade_and_compare(10, 13, resize10({1.f, 1.f, 0.5f, 0.5f}, true), m);
    CHECK(only(m.main_graph(), "Resize")->attr_string("nearest_mode", "") == "ceil");
  }
  SUBCASE("upsampling rounds down") {
    model m;
    upgrade_and_compare(10, 12, resize10({1.f, 1.f, 2.f, 1.5f}, true), m);
    CHECK(only(m.main_graph(), "Resize")->attr_string("nearest_mode", "") == "floor");
  }
  SUBCASE("mixed directions are refused") {
    model m = make(10, resize10({1.f, 1.f, 0.5f, 2.f}, true));
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 11), doctest::Contains("node 'rs' (Resize)"), quench::error);
  }
  SUBCASE("scales that are not constant are refused") {
    model m = make(10, resize10({}, false));
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 13), doctest::Contains("not a float constant"), quench::error);
  }
  SUBCASE("tf_half_pixel_for_nn cannot cross 13") {
    model m = make(11, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({1, 1, 2, 2}));
      auto& roi = g.add_initializer(floats({0}, {}, "roi"));
      auto& s = g.add_initializer(floats({4}, {1, 1, 2, 2}, "scales"));
      auto& r = g.add_node("Resize", {&x, &roi, &s}, {"y"}, "rs");
      r.set_attribute(attribute::make_string("coordinate_transformation_mode", "tf_half_pixel_for_nn"));
      g.add_output(*r.output(0));
    });
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 13), doctest::Contains("tf_half_pixel_for_nn"), quench::error);
    CHECK_NOTHROW(qp::upgrade_opset(m, 12));
  }
}

TEST_CASE("upgrade_opset: BatchNormalization") {
  auto bn = [](std::int64_t spatial, int outputs) {
    return [spatial, outputs](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({1, 2, 3, 3}));
      std::vector<quench::value*> in{&x};
      for (const char* p : {"scale", "B", "mean", "var"})
        in.push_back(&g.add_initializer(floats({2}, {0.5f, 2.f}, p)));
      std::vector<std::string> outs{"y"};
      for (int i = 1; i < outputs; ++i) outs.push_back("extra" + std::to_string(i));
      auto& n = g.add_node("BatchNormalization", in, outs, "bn");
      if (spatial >= 0) n.set_attribute(attribute::make_int("spatial", spatial));
      g.add_output(*n.output(0));
      for (int i = 1; i < outputs; ++i) g.add_output(*n.output(static_cast<std::size_t>(i)));
    };
  };
  SUBCASE("spatial = 1 is dropped at 9") {
    model m;
    const auto r = upgrade_and_compare(7, 15, bn(1, 1), m);
    CHECK(!only(m.main_graph(), "BatchNormalization")->find_attribute("spatial"));
    CHECK(r.rewrites == 1);
  }
  SUBCASE("spatial = 0 is refused") {
    model m = make(8, bn(0, 1));
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 9), doctest::Contains("spatial = 0"), quench::error);
    CHECK_NOTHROW(qp::upgrade_opset(m, 8));
  }
  SUBCASE("a used saved mean is refused at 14") {
    model m = make(9, bn(-1, 4));
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 14), doctest::Contains("saved mean"), quench::error);
  }
  SUBCASE("running mean and variance outputs mean training_mode = 1") {
    model m = make(9, bn(-1, 3));
    qp::upgrade_opset(m, 14);
    m.main_graph().check_invariants();
    const node* n = only(m.main_graph(), "BatchNormalization");
    CHECK(n->attr_int("training_mode", 0) == 1);
    CHECK(n->output(1)->name() == "extra1");
    CHECK(n->output(2)->name() == "extra2");
  }
}

TEST_CASE("upgrade_opset: Dropout") {
  model m;
  const auto r = upgrade_and_compare(7, 13, [](model& mm) {
    graph& g = mm.main_graph();
    auto& x = g.add_input("x", f32, dims({2, 3}));
    auto& d = g.add_node("Dropout", {&x}, {"y", "mask"}, "drop");
    d.set_attribute(attribute::make_float("ratio", 0.25f));
    auto& add = g.add_node("Add", {d.output(0), d.output(1)}, {"z"}, "add");
    g.add_output(*add.output(0));
    g.add_output(*d.output(1));
  }, m);
  const graph& g = m.main_graph();
  const node* d = only(g, "Dropout");
  CHECK(!d->find_attribute("ratio"));
  CHECK(data<float>(d->input(1)) == std::vector<float>{0.25f});
  const node* cast = only(g, "Cast");
  CHECK(cast->input(0) == d->output(1));
  CHECK(cast->output(0)->name() == "mask");
  CHECK(cast->attr_int("to", 0) == 1);
  CHECK(d->output(1)->elem_type() == 9);
  CHECK(r.rewritten.at("Dropout") == 1);
  CHECK(topologically_sorted(g));
}

TEST_CASE("upgrade_opset: sub-graphs are upgraded with the main graph") {
  model m = make(11, [](model& mm) {
    graph& g = mm.main_graph();
    auto& c = g.add_input("c", 9, dims({}));
    g.add_input("x", f32, dims({3}));
    auto& n = g.add_node("If", {&c}, {"y"}, "if");
    for (const char* branch : {"then_branch", "else_branch"}) {
      graph& sub = add_subgraph(g, n, branch);
      auto& u = sub.add_node("Unsqueeze", {&sub.outer_ref("x")}, {std::string(branch) + "_y"}, std::string(branch) + "_u");
      u.set_attribute(attribute::make_ints("axes", {0}));
      sub.add_output(*u.output(0));
    }
    g.add_output(*n.output(0));
  });
  const auto r = qp::upgrade_opset(m, 13);
  m.main_graph().check_invariants();
  CHECK(r.rewritten.at("Unsqueeze") == 2);
  CHECK(r.nodes == 3);
  for (graph* sub : m.main_graph().nodes()[0]->subgraphs()) {
    const node* u = only(*sub, "Unsqueeze");
    REQUIRE(u->input(1));
    CHECK(u->input(1)->is_initializer());
    CHECK(sub->find_value(u->input(1)->name()) == u->input(1));
  }
}

TEST_CASE("upgrade_opset: refusals") {
  SUBCASE("downgrade, opsets out of range, nothing to do") {
    model m = make(13, unary("Relu", {2}));
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 12), doctest::Contains("downgrading"), quench::error);
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 22), doctest::Contains("newer than 21"), quench::error);
    const auto r = qp::upgrade_opset(m, 13);
    CHECK(r.nodes == 0);
    model old = make(6, unary("Relu", {2}));
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(old, 13), doctest::Contains("older than 7"), quench::error);
  }
  SUBCASE("an operator the table does not know") {
    model m = make(11, unary("NonMaxSuppression", {2}));
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 13), doctest::Contains("node 'n' (NonMaxSuppression)"), quench::error);
  }
  SUBCASE("an operator that does not exist yet at the model's opset") {
    model m = make(11, unary("HardSwish", {2}));
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 14), doctest::Contains("does not exist at opset 11"), quench::error);
  }
  SUBCASE("a domain that may depend on ai.onnx; an independent one is kept") {
    model m = make(11, unary("Relu", {2}, [](node& n) { n.set_domain("my.functions"); }));
    m.set_opset("my.functions", 1);
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 13), doctest::Contains("my.functions"), quench::error);
    qp::upgrade_options o;
    o.independent_domains.push_back("my.functions");
    CHECK(qp::upgrade_opset(m, 13, o).nodes == 0);
    CHECK(m.opset("my.functions") == 1);
  }
  SUBCASE("model-local functions") {
    model m = make(11, unary("Relu", {2}));
    m.residual = std::string("\xca\x01\x00", 3);  // ModelProto field 25 (functions), empty
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 13), doctest::Contains("local functions"), quench::error);
  }
  SUBCASE("ConvTranspose with auto_pad SAME_UPPER across 11") {
    model m = make(10, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({1, 1, 3, 3}));
      auto& w = g.add_initializer(floats({1, 1, 2, 2}, {1, 2, 3, 4}, "W"));
      auto& n = g.add_node("ConvTranspose", {&x, &w}, {"y"}, "deconv");
      n.set_attribute(attribute::make_string("auto_pad", "SAME_UPPER"));
      n.set_attribute(attribute::make_ints("strides", {2, 2}));
      g.add_output(*n.output(0));
    });
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 11), doctest::Contains("node 'deconv' (ConvTranspose)"), quench::error);
  }
  SUBCASE("a malformed node is named") {
    model m = make(11, [](model& mm) {
      graph& g = mm.main_graph();
      auto& x = g.add_input("x", f32, dims({3}));
      auto& u = g.add_node("Unsqueeze", {&x}, {"y"}, "bad");
      u.set_attribute(attribute::make_float("axes", 1.f));
      g.add_output(*u.output(0));
    });
    CHECK_THROWS_WITH_AS(qp::upgrade_opset(m, 13), doctest::Contains("node 'bad' (Unsqueeze)"), quench::error);
  }
}

TEST_CASE("upgrade_opset: ir_version follows the target") {
  for (auto [target, ir] : std::vector<std::pair<std::int64_t, std::int64_t>>{{10, 5}, {13, 7}, {17, 8}, {19, 9}, {21, 10}}) {
    model m = make(9, unary("Relu", {2}));
    qp::upgrade_opset(m, target);
    CHECK(m.ir_version == ir);
  }
}
