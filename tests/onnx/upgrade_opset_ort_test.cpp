// upgrade_opset against the original model, in quench's executor and (through saved pairs that
// tests/ort/compare_models.js runs) in ONNX Runtime: every libonnx-testdata model below opset 13
// that the executor runs, hand-built models of every rewrite at their old opsets, and the
// torch-exported opset-9 models. Each case here is skipped unless asked for (--no-skip); ctest
// runs them from tests/graph/upgrade_opset.cmake, then compares the pairs.
//
// The testdata models read index, shape and axes inputs that random numbers would not fit, so
// their pairs have the inputs of test_data_set_0 baked in as initializers: both models of a pair
// take no inputs and run on the reference data.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/graph/passes/upgrade_opset.hpp"
#include "quench/onnx/model_io.hpp"
#include "quench/onnx/shape_inference.hpp"
#include "quench/onnx/tensor_proto.hpp"
#include "quench/runtime/executor.hpp"

namespace {

namespace fs = std::filesystem;
namespace qp = quench::passes;
namespace rt = quench::runtime;
using quench::attribute;
using quench::graph;
using quench::model;

constexpr std::int64_t targets[] = {13, 21};

std::vector<std::string> feed_names(const model& m) {
  std::vector<std::string> out;
  for (const quench::value* v : m.main_graph().inputs())
    if (!v->is_initializer()) out.push_back(v->name());
  return out;
}

/// Runs `m` in quench's executor on `inputs` (named after graph inputs).
std::vector<quench::tensor> execute(const model& m, const std::vector<quench::tensor>& inputs) {
  rt::executor ex(m);
  std::unordered_map<std::string, const quench::tensor*> feeds;
  for (const auto& t : inputs) feeds[t.name()] = &t;
  return ex.run(feeds);
}

/// Empty when the outputs agree (floats to 1e-5 relative, everything else bit for bit).
std::string differ(const std::vector<quench::tensor>& a, const std::vector<quench::tensor>& b) {
  if (a.size() != b.size()) return "output count " + std::to_string(b.size()) + ", expected " + std::to_string(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    const std::string which = "output " + std::to_string(i) + ": ";
    if (a[i].dtype() != b[i].dtype()) return which + "dtype differs";
    if (a[i].shape() != b[i].shape()) return which + "shape " + quench::to_string(b[i].shape()) + ", expected " + quench::to_string(a[i].shape());
    if (a[i].dtype() == quench::dtype::float32) {
      const auto x = a[i].view<float>(), y = b[i].view<float>();
      for (std::size_t k = 0; k < x.size(); ++k)
        if (!(x[k] == y[k] || (x[k] != x[k] && y[k] != y[k]) || std::abs(x[k] - y[k]) <= 1e-5f * std::max(1.f, std::abs(x[k]))))
          return which + "element " + std::to_string(k) + " is " + std::to_string(y[k]) + ", expected " + std::to_string(x[k]);
    } else if (a[i].nbytes() && std::memcmp(a[i].bytes(), b[i].bytes(), a[i].nbytes()) != 0) {
      return which + "bytes differ";
    }
  }
  return {};
}

/// Graph inputs become initializers holding `inputs`, under the same names: the model then runs
/// without feeds. IR < 4 lists every initializer as a graph input, so the IR goes to 4.
void bake_inputs(model& m, const std::vector<quench::tensor>& inputs) {
  graph& g = m.main_graph();
  for (const auto& t : inputs) {
    quench::value* v = g.find_value(t.name());
    if (!v || !v->is_graph_input() || v->is_initializer()) continue;
    const std::string name = v->name();
    quench::tensor c = t.clone();
    c.set_name(g.unique_name(name + "_baked"));
    quench::value& init = g.add_initializer(std::move(c));
    g.replace_all_uses(*v, init, /*include_outputs=*/true);
    g.remove_value(*v);
    quench::detail::rename_value(g, init, name);
  }
  m.ir_version = std::max<std::int64_t>(m.ir_version, 4);
}

/// Uniform floats in [-1, 1) for every float graph input, symbolic dimensions of size 2.
std::vector<quench::tensor> random_inputs(const model& m, std::uint32_t seed) {
  std::vector<quench::tensor> out;
  for (const quench::value* v : m.main_graph().inputs()) {
    if (v->is_initializer()) continue;
    REQUIRE(v->dims());
    REQUIRE(v->dtype() == quench::dtype::float32);
    std::vector<std::int64_t> s;
    for (const auto& d : *v->dims()) s.push_back(d.value ? *d.value : 2);
    quench::tensor t(quench::dtype::float32, quench::shape(s), v->name());
    for (float& x : t.view<float>()) {
      seed = seed * 1664525u + 1013904223u;
      x = static_cast<float>(seed >> 8) / static_cast<float>(1u << 24) * 2.f - 1.f;
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::string summary(const qp::upgrade_report& r) {
  std::string s = std::to_string(r.rewrites) + " rewritten";
  for (const auto& [op, n] : r.rewritten) s += " " + op + "=" + std::to_string(n);
  return s;
}

}  // namespace

TEST_CASE("upgrade_opset on libonnx-testdata models, saved for ONNX Runtime" * doctest::skip()) {
  const fs::path out = fs::path(QUENCH_TEST_BINARY_DIR) / "upgrade_opset" / "testdata";
  fs::remove_all(out);
  fs::create_directories(out);
  std::map<std::int64_t, std::ostringstream> pairs;
  std::map<std::int64_t, std::size_t> upgraded, executed;
  std::map<std::int64_t, std::vector<std::string>> refused;
  std::size_t candidates = 0, unsupported = 0, too_old = 0;
  for (const char* group : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(fs::path(QUENCH_ONNX_TESTDATA_DIR) / group))
      if (fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path());
    std::sort(dirs.begin(), dirs.end());
    for (const fs::path& dir : dirs) {
      const std::string name = std::string(group) + "_" + dir.filename().string();
      CAPTURE(name);
      model original;
      try {
        original = quench::onnx::load_model(dir / "model.onnx");
      } catch (const quench::error&) {
        continue;  // the loader's refusals are executor_sweep's business
      }
      const std::int64_t opset = original.opset("");
      if (opset == 0 || opset >= 13) continue;
      ++candidates;
      if (!rt::check(original).empty()) {
        ++unsupported;
        continue;
      }
      if (opset < quench::detail::upgrade_min_opset) {
        ++too_old;
        CHECK_THROWS_AS(qp::upgrade_opset(original, 13), quench::error);
        continue;
      }
      std::vector<quench::tensor> inputs;
      const auto names = feed_names(original);
      for (std::size_t i = 0; i < names.size(); ++i) {
        const fs::path p = dir / "test_data_set_0" / ("input_" + std::to_string(i) + ".pb");
        if (!fs::exists(p)) break;
        inputs.push_back(quench::onnx::read_tensor_file(p.string()));
        inputs.back().set_name(names[i]);
      }
      const auto want = execute(original, inputs);
      bool saved_original = false;
      for (std::int64_t target : targets) {
        CAPTURE(target);
        model m = quench::onnx::load_model(dir / "model.onnx");
        try {
          quench::onnx::infer_shapes(m);
        } catch (const quench::error&) {
        }
        qp::upgrade_report r;
        try {
          r = qp::upgrade_opset(m, target);
        } catch (const quench::error& e) {
          // A refusal by design (no exact counterpart, e.g. Resize tf_half_pixel_for_nn) is
          // unsupported_op; anything else would be the pass misreading a valid model.
          CHECK_MESSAGE(e.code() == quench::errc::unsupported_op, e.what());
          refused[target].push_back(name + ": " + e.what());
          continue;
        }
        m.main_graph().check_invariants();
        CHECK(m.opset("") == target);
        ++upgraded[target];
        // onnx 1.12's checker knows opset 13 (not 21).
        if (target == 13) CHECK_NOTHROW(quench::onnx::check_model(m));
        if (rt::check(m).empty()) {
          const std::string d = differ(want, execute(m, inputs));
          CHECK_MESSAGE(d.empty(), "executor, upgraded to " << target << ": " << d);
          ++executed[target];
        }
        if (r.rewrites) MESSAGE(name << " -> " << target << ": " << summary(r));
        bake_inputs(m, inputs);
        const std::string file = name + "_op" + std::to_string(target) + ".onnx";
        quench::onnx::save_model(m, out / file);
        if (!saved_original) {
          bake_inputs(original, inputs);
          quench::onnx::save_model(original, out / (name + ".onnx"));
          saved_original = true;
        }
        pairs[target] << name << ".onnx " << file << '\n';
      }
    }
  }
  MESSAGE(candidates << " testdata models below opset 13: " << unsupported << " not run by quench's executor, "
                     << too_old << " below opset 7 (refused)");
  for (std::int64_t target : targets) {
    MESSAGE("to opset " << target << ": " << upgraded[target] << " upgraded (" << executed[target]
                        << " also run by the executor, equal), " << refused[target].size() << " refused");
    for (const auto& why : refused[target]) MESSAGE("  refused: " << why);
    std::ofstream(out / ("pairs_" + std::to_string(target) + ".txt")) << pairs[target].str();
  }
  CHECK(upgraded[13] > 0);
  CHECK(upgraded[21] > 0);
}

TEST_CASE("upgrade_opset on every libonnx-testdata model: an upgrade or a quench::error, and a refused model unchanged") {
  std::size_t done = 0, refused = 0;
  std::map<std::string, std::size_t> reasons;
  for (const char* group : {"node", "pytorch-converted", "pytorch-operator", "simple", "real"}) {
    const fs::path root = fs::path(QUENCH_ONNX_TESTDATA_DIR) / group;
    if (!fs::exists(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      const fs::path file = e.path() / "model.onnx";
      if (!fs::exists(file)) continue;
      const std::string name = std::string(group) + "/" + e.path().filename().string();
      CAPTURE(name);
      for (std::int64_t target : targets) {
        model m;
        try {
          m = quench::onnx::load_model(file);
        } catch (const quench::error&) {
          break;
        }
        if (m.opset("") > target) continue;
        const std::string before = quench::onnx::save_model_buffer(m);
        try {
          qp::upgrade_opset(m, target);
          m.main_graph().check_invariants();
          ++done;
        } catch (const quench::error& e) {
          ++refused;
          ++reasons[std::string(quench::errc_name(e.code()))];
          CHECK_MESSAGE(quench::onnx::save_model_buffer(m) == before, "refused, but changed: " << e.what());
        }
      }
    }
  }
  MESSAGE(done << " upgrades, " << refused << " refusals");
  for (const auto& [why, n] : reasons) MESSAGE("  " << why << ": " << n);
  CHECK(done > 0);
}

namespace {

struct built_case {
  const char* name;
  std::int64_t opset;
  std::function<void(graph&)> build;
};

quench::value& input(graph& g, const std::string& name, std::vector<std::int64_t> shape) {
  std::vector<quench::dim> d;
  for (auto s : shape) d.push_back(quench::dim{s, {}});
  return g.add_input(name, 1, d);
}

quench::value& floats(graph& g, const std::string& name, std::vector<float> v) {
  quench::tensor t(quench::dtype::float32, {static_cast<std::int64_t>(v.size())}, name);
  std::copy(v.begin(), v.end(), t.view<float>().begin());
  return g.add_initializer(std::move(t));
}

quench::node& op(graph& g, const std::string& type, const std::vector<quench::value*>& in,
                 const std::vector<std::string>& outs, std::vector<attribute> attrs = {}) {
  quench::node& n = g.add_node(type, in, outs, outs.front() + "_node");
  for (auto& a : attrs) n.set_attribute(std::move(a));
  for (const auto& o : outs) g.add_output(*g.find_value(o));
  return n;
}

using A = attribute;

template <class... As>
std::vector<A> with(As... as) {
  std::vector<A> v;
  (v.push_back(std::move(as)), ...);
  return v;
}

/// One model per rewrite, at the opset before it: what ONNX Runtime's old kernels compute is the
/// reference each rewrite must reproduce.
std::vector<built_case> built_cases() {
  return {
      {"softmax_axis1_rank4", 11, [](graph& g) { op(g, "Softmax", {&input(g, "x", {2, 3, 4, 5})}, {"y"}); }},
      {"logsoftmax_axis2_rank4", 11,
       [](graph& g) { op(g, "LogSoftmax", {&input(g, "x", {2, 3, 4, 5})}, {"y"}, with(A::make_int("axis", 2))); }},
      {"hardmax_axis0", 9, [](graph& g) { op(g, "Hardmax", {&input(g, "x", {3, 4})}, {"y"}, with(A::make_int("axis", 0))); }},
      {"softmax_last_axis", 9, [](graph& g) { op(g, "Softmax", {&input(g, "x", {2, 7})}, {"y"}); }},
      {"unsqueeze_squeeze", 11,
       [](graph& g) {
         auto& u = g.add_node("Unsqueeze", {&input(g, "x", {3, 4})}, {"u"}, "u");
         u.set_attribute(A::make_ints("axes", {0, 3}));
         op(g, "Squeeze", {u.output(0)}, {"y"}, with(A::make_ints("axes", {0})));
       }},
      {"reductions", 11,
       [](graph& g) {
         auto& x = input(g, "x", {2, 3, 4});
         op(g, "ReduceSum", {&x}, {"sum"}, with(A::make_ints("axes", {1})));
         op(g, "ReduceMean", {&x}, {"mean"}, with(A::make_ints("axes", {-1}), A::make_int("keepdims", 0)));
         op(g, "ReduceMax", {&x}, {"max"}, with(A::make_ints("axes", {0, 2})));
         op(g, "ReduceL2", {&x}, {"l2"});
         op(g, "ReduceLogSumExp", {&x}, {"lse"}, with(A::make_ints("axes", {2})));
       }},
      {"split_sizes", 11,
       [](graph& g) {
         op(g, "Split", {&input(g, "x", {2, 4})}, {"a", "b"}, with(A::make_int("axis", 1), A::make_ints("split", {1, 3})));
       }},
      {"split_equal", 9, [](graph& g) { op(g, "Split", {&input(g, "x", {4, 2})}, {"a", "b"}); }},
      {"clip6", 9,
       [](graph& g) {
         auto& x = input(g, "x", {4, 5});
         op(g, "Clip", {&x}, {"both"}, with(A::make_float("min", -0.3f), A::make_float("max", 0.6f)));
         op(g, "Clip", {&x}, {"max_only"}, with(A::make_float("max", 0.1f)));
       }},
      {"slice1", 9,
       [](graph& g) {
         op(g, "Slice", {&input(g, "x", {4, 6})}, {"y"},
            with(A::make_ints("starts", {1, -3}), A::make_ints("ends", {3, 100}), A::make_ints("axes", {0, 1})));
       }},
      {"pad2", 9,
       [](graph& g) {
         auto& x = input(g, "x", {1, 2, 3, 4});
         for (const char* mode : {"constant", "reflect", "edge"})
           op(g, "Pad", {&x}, {std::string("pad_") + mode},
              with(A::make_string("mode", mode), A::make_ints("pads", {0, 0, 1, 2, 0, 0, 2, 1}), A::make_float("value", 0.7f)));
       }},
      {"topk1", 9,
       [](graph& g) {
         op(g, "TopK", {&input(g, "x", {2, 6})}, {"values", "indices"}, with(A::make_int("k", 3), A::make_int("axis", 1)));
       }},
      {"upsample7_nearest", 7,
       [](graph& g) {
         op(g, "Upsample", {&input(g, "x", {1, 2, 3, 4})}, {"y"}, with(A::make_floats("scales", {1.f, 1.f, 2.f, 3.f})));
       }},
      {"upsample9_nearest", 9,
       [](graph& g) {
         op(g, "Upsample", {&input(g, "x", {1, 2, 3, 3}), &floats(g, "scales", {1.f, 1.f, 1.5f, 2.5f})}, {"y"});
       }},
      {"upsample9_linear", 9,
       [](graph& g) {
         op(g, "Upsample", {&input(g, "x", {1, 1, 3, 4}), &floats(g, "scales", {1.f, 1.f, 2.f, 2.f})}, {"y"},
            with(A::make_string("mode", "linear")));
       }},
      {"resize10_nearest_down", 10,
       [](graph& g) { op(g, "Resize", {&input(g, "x", {1, 1, 6, 5}), &floats(g, "scales", {1.f, 1.f, 0.5f, 0.6f})}, {"y"}); }},
      {"resize10_nearest_up", 10,
       [](graph& g) { op(g, "Resize", {&input(g, "x", {1, 1, 3, 4}), &floats(g, "scales", {1.f, 1.f, 1.5f, 2.5f})}, {"y"}); }},
      {"resize10_linear", 10,
       [](graph& g) {
         auto& x = input(g, "x", {1, 1, 4, 6});
         op(g, "Resize", {&x, &floats(g, "up_scales", {1.f, 1.f, 2.f, 1.5f})}, {"up"}, with(A::make_string("mode", "linear")));
         op(g, "Resize", {&x, &floats(g, "down_scales", {1.f, 1.f, 0.5f, 0.5f})}, {"down"},
            with(A::make_string("mode", "linear")));
       }},
      {"dropout10_ratio", 10, [](graph& g) { op(g, "Dropout", {&input(g, "x", {2, 3})}, {"y"}, with(A::make_float("ratio", 0.3f))); }},
      {"batchnorm7_spatial", 7,
       [](graph& g) {
         auto& x = input(g, "x", {1, 2, 3, 3});
         op(g, "BatchNormalization",
            {&x, &floats(g, "scale", {0.5f, 2.f}), &floats(g, "B", {0.1f, -0.2f}), &floats(g, "mean", {0.3f, -0.1f}),
             &floats(g, "var", {1.5f, 0.25f})},
            {"y"}, with(A::make_int("spatial", 1)));
       }},
  };
}

}  // namespace

TEST_CASE("upgrade_opset on hand-built old-opset models, saved for ONNX Runtime" * doctest::skip()) {
  const fs::path out = fs::path(QUENCH_TEST_BINARY_DIR) / "upgrade_opset" / "rewrites";
  fs::remove_all(out);
  fs::create_directories(out);
  std::ostringstream pairs;
  std::size_t saved = 0;
  for (const built_case& c : built_cases()) {
    const std::string case_name = c.name;
    CAPTURE(case_name);
    auto make = [&c] {
      model m;
      m.set_opset("", c.opset);
      m.ir_version = c.opset >= 9 ? 4 : 3;
      c.build(m.main_graph());
      quench::onnx::infer_shapes(m);
      m.main_graph().check_invariants();
      return m;
    };
    model original = make();
    const auto inputs = random_inputs(original, 7);
    const auto want = execute(original, inputs);
    quench::onnx::save_model(original, out / (std::string(c.name) + ".onnx"));
    for (std::int64_t target : targets) {
      CAPTURE(target);
      model m = make();
      const auto r = qp::upgrade_opset(m, target);
      m.main_graph().check_invariants();
      CHECK(r.nodes > 0);
      MESSAGE(std::string(c.name) << " -> " << target << ":");
      for (const auto& line : r.changes) MESSAGE("  " << line);
      if (target == 13) CHECK_NOTHROW(quench::onnx::check_model(m));
      const std::string d = differ(want, execute(m, inputs));
      CHECK_MESSAGE(d.empty(), "executor: " << d);
      const std::string file = std::string(c.name) + "_op" + std::to_string(target) + ".onnx";
      quench::onnx::save_model(m, out / file);
      pairs << c.name << ".onnx " << file << '\n';
      ++saved;
    }
  }
  std::ofstream(out / "pairs.txt") << pairs.str();
  CHECK(saved > 0);
}

TEST_CASE("upgrade_opset on torch opset-9 models, saved for ONNX Runtime" * doctest::skip()) {
  const fs::path models = fs::path(QUENCH_TEST_BINARY_DIR) / "e2e" / "torch_models";
  const fs::path out = fs::path(QUENCH_TEST_BINARY_DIR) / "upgrade_opset" / "torch";
  fs::remove_all(out);
  fs::create_directories(out);
  std::ostringstream pairs;
  std::size_t saved = 0;
  for (const std::string name : {"resnet", "mobilenet", "unet", "transformer"}) {
    CAPTURE(name);
    const fs::path file = models / (std::string(name) + "_op9.onnx");
    REQUIRE_MESSAGE(fs::exists(file), "run the e2e_torch_models_data ctest fixture first");
    const model original = quench::onnx::load_model(file);
    const auto inputs = random_inputs(original, 3);
    const auto want = execute(original, inputs);
    for (std::int64_t target : targets) {
      CAPTURE(target);
      model m = quench::onnx::load_model(file);
      quench::onnx::infer_shapes(m);
      const auto r = qp::upgrade_opset(m, target);
      m.main_graph().check_invariants();
      MESSAGE(name << "_op9 -> " << target << ": " << r.nodes << " nodes, " << summary(r));
      if (target == 13) CHECK_NOTHROW(quench::onnx::check_model(m));
      const std::string d = differ(want, execute(m, inputs));
      CHECK_MESSAGE(d.empty(), "executor: " << d);
      const std::string upgraded = std::string(name) + "_op9_to" + std::to_string(target) + ".onnx";
      quench::onnx::save_model(m, out / upgraded);
      pairs << fs::relative(file, out).string() << ' ' << upgraded << '\n';
      ++saved;
    }
  }
  std::ofstream(out / "pairs.txt") << pairs.str();
  CHECK(saved == 8);
}
