#pragma once
// Automatic blocking for the float16 / bfloat16 conversion: run the float32 model on samples and
// find the nodes whose half version overflows or diverges.
//
// quench's executor computes in float32 only (its float16 support is Cast and data movement), so
// the converted model itself cannot run here. Half precision is simulated instead, the way ONNX
// Runtime's x86 CPU provider runs a float16 model: every tensor the converted model stores in the
// half type is rounded through it, the arithmetic is float32. Each node is evaluated twice from
// the float32 reference values:
//
//   local   its inputs rounded as the converted node would read them; the outputs rounded as it
//           would store them, compared with the float32 outputs. A node is blocked when an input or
//           output overflows the half range (Inf where float32 is finite) or when the relative
//           error of an output exceeds the threshold. Being local, the test blames the node that
//           causes a problem, not every node downstream of it, so one pass finds them all (the
//           readers of an overflowing tensor are blocked too: they would read it as Inf).
//   global  the whole converted model simulated (rounded values flow on), giving the expected
//           error of the graph outputs, before and after the blocks, for the report.
//
// GPU and ARM runtimes compute in float16 itself, where accumulations can also overflow inside a
// kernel; the simulation sees only the stored tensors, so it does not catch those.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/pipeline/detail/float16_plan.hpp"
#include "quench/runtime/builtin_ops.hpp"
#include "quench/runtime/executor.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"

namespace quench::pipeline::detail {

/// A float32 copy of `t` rounded through the half type (float16 or bfloat16).
inline tensor round_through_half(const tensor& t, bool bf16) {
  tensor out = tensor::uninitialized(dtype::float32, t.shape(), t.name());
  const float* src = t.view<float>().data();
  float* dst = out.view<float>().data();
  std::uint16_t buf[4096];
  for (std::size_t i = 0, n = t.size(); i < n; i += 4096) {
    const std::size_t m = std::min<std::size_t>(4096, n - i);
    if (bf16) {
      convert(src + i, reinterpret_cast<bfloat16*>(buf), m);
      convert(reinterpret_cast<const bfloat16*>(buf), dst + i, m);
    } else {
      convert(src + i, reinterpret_cast<float16*>(buf), m);
      convert(reinterpret_cast<const float16*>(buf), dst + i, m);
    }
  }
  return out;
}

/// The float32 values of a constant's stored half form (clamping and underflow applied).
inline tensor widen_half(const tensor& h) {
  tensor out = tensor::uninitialized(dtype::float32, h.shape(), h.name());
  if (h.dtype() == dtype::bfloat16) convert(h.view<bfloat16>().data(), out.view<float>().data(), h.size());
  else convert(h.view<float16>().data(), out.view<float>().data(), h.size());
  return out;
}

struct tensor_difference {
  double rel_l2 = 0, max_rel = 0, cosine = 1, max_abs_ref = 0, max_abs_half = 0;
  std::size_t overflow = 0;  ///< non-finite in the half version, finite in float32
};

inline tensor_difference difference(const tensor& ref, const tensor& half) {
  tensor_difference d;
  const auto r = ref.view<float>();
  const auto h = half.view<float>();
  double err2 = 0, ref2 = 0, half2 = 0, dot = 0, max_err = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    const double a = r[i], b = h[i];
    if (!std::isfinite(a)) continue;  // the float32 model is not finite here either
    d.max_abs_ref = std::max(d.max_abs_ref, std::fabs(a));
    if (!std::isfinite(b)) {
      ++d.overflow;
      continue;
    }
    err2 += (a - b) * (a - b);
    ref2 += a * a;
    half2 += b * b;
    dot += a * b;
    max_err = std::max(max_err, std::fabs(a - b));
    d.max_abs_half = std::max(d.max_abs_half, std::fabs(b));
  }
  d.rel_l2 = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  d.max_rel = d.max_abs_ref > 0 ? max_err / d.max_abs_ref : max_err;
  d.cosine = ref2 > 0 && half2 > 0 ? dot / std::sqrt(ref2 * half2) : (ref2 == half2 ? 1.0 : 0.0);
  if (d.overflow) d.cosine = 0;
  return d;
}

inline std::string format_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", x);
  return buf;
}

/// Runs the main graph of `m` on each sample, node by node with the registry's float32 kernels.
/// Fills `flagged` (local test, when non-null) and the worst output errors of the converted model
/// simulated per `plan` (global test).
class half_evaluator {
 public:
  half_evaluator(const model& m, const half_auto_block_options& opt)
      : m_(m), opt_(opt), registry_(opt.registry ? *opt.registry : runtime::builtin_ops()) {
    const auto problems = runtime::check(m, registry_);
    if (!problems.empty()) {
      std::string msg = "automatic blocking runs the float32 model in quench's executor, and " + std::to_string(problems.size()) +
                        " node(s) cannot run there:";
      for (const auto& p : problems) msg += "\n  " + p;
      throw_error(errc::unsupported_op, "float16 auto-block", msg);
    }
    order_ = dependency_order(m.main_graph());
    for (const node* n : order_)
      for (const value* v : n->inputs())
        if (v) ++use_count_[v];
  }

  void run(const half_plan& plan, std::unordered_map<const node*, std::string>* flagged, std::vector<half_output_error>& errors) {
    errors.clear();
    for (std::size_t s = 0; s < opt_.samples.size(); ++s) run_sample(plan, opt_.samples[s], s, flagged, errors);
  }

 private:
  using tensor_map = std::unordered_map<const value*, tensor>;

  std::vector<tensor> run_node(const node& n, const std::vector<const tensor*>& ins) const {
    const std::int64_t opset = m_.opset(n.domain());
    const runtime::op_entry* e = registry_.find(n.domain(), n.op_type(), opset);
    std::vector<tensor> outs(n.outputs().size());
    runtime::op_context ctx(n, opset, ins, outs, opt_.threads);
    e->run(ctx);
    return outs;
  }

  void run_sample(const half_plan& plan, const std::unordered_map<std::string, const tensor*>& feed, std::size_t index,
                  std::unordered_map<const node*, std::string>* flagged, std::vector<half_output_error>& errors) {
    const graph& g = m_.main_graph();
    const bool bf16 = plan.bf16;
    const std::string half_name = elem_name(plan.half);
    const std::string sample = "sample " + std::to_string(index);
    tensor_map ref, sim;
    std::unordered_map<const value*, int> remaining = use_count_;
    for (const value* v : g.outputs()) remaining[v] += 1 << 20;  // graph outputs stay to the end
    // A tensor as the converted model would hold it: rounded when stored in the half type.
    auto stored = [&](const value* v, const tensor& t) -> tensor {
      if (plan.type(v) == elem_float && plan.final_type(v) == plan.half && t.dtype() == dtype::float32) {
        if (const tensor* c = plan.constant_tensor(v)) return widen_half(plan.half_of(*c));
        return round_through_half(t, bf16);
      }
      return t.share();
    };
    for (const value* v : g.inputs()) {
      if (v->is_initializer()) continue;
      auto it = feed.find(v->name());
      if (it == feed.end() || !it->second)
        throw_error(errc::invalid_argument, "float16 auto-block " + sample, "graph input '" + v->name() + "' is not given");
      const tensor& t = *it->second;
      if (v->elem_type() != 0 && static_cast<std::int32_t>(t.dtype()) != v->elem_type())
        throw_error(errc::dtype_mismatch, "float16 auto-block " + sample + " input '" + v->name() + "'",
                    "expected " + to_string(v->dtype()) + ", found " + to_string(t.dtype()));
      ref.emplace(v, t.share());
      sim.emplace(v, stored(v, t));
    }
    for (const auto& kv : feed)
      if (const value* v = g.find_value(kv.first); !v || !v->is_graph_input())
        throw_error(errc::invalid_argument, "float16 auto-block " + sample, "the model has no graph input '" + kv.first + "'");
    for (const value* v : g.initializers()) {
      if (ref.count(v)) continue;
      ref.emplace(v, v->initializer()->share());
      sim.emplace(v, stored(v, *v->initializer()));
    }
    auto flag = [&](const node& n, const std::string& why) {
      if (flagged && !flagged->count(&n)) flagged->emplace(&n, "auto-block: " + why + " on " + sample);
    };

    for (const node* n : order_) {
      std::vector<const tensor*> ref_in, sim_in;
      std::vector<tensor> sim_cast;  // inputs a converted node reads through a Cast to half
      sim_cast.reserve(n->inputs().size());
      for (std::size_t i = 0; i < n->inputs().size(); ++i) {
        const value* v = n->input(i);
        if (!v) {
          ref_in.push_back(nullptr);
          sim_in.push_back(nullptr);
          continue;
        }
        ref_in.push_back(&ref.at(v));
        const tensor& s = sim.at(v);
        if (plan.type(v) == elem_float && plan.want(*n, i) == plan.half && plan.final_type(v) != plan.half) {
          sim_cast.push_back(round_through_half(s, bf16));
          sim_in.push_back(&sim_cast.back());
        } else {
          sim_in.push_back(&s);
        }
      }
      std::vector<tensor> ref_out = run_node(*n, ref_in);
      if (flagged && plan.converted.count(n)) check_local(*n, plan, ref_in, ref_out, flag);
      std::vector<tensor> sim_out = run_node(*n, sim_in);
      for (std::size_t k = 0; k < n->outputs().size(); ++k) {
        const value* v = n->output(k);
        if (!v || ref_out[k].dtype() == dtype::undefined) continue;
        sim.emplace(v, stored(v, sim_out[k]));
        ref.emplace(v, std::move(ref_out[k]));
      }
      for (const value* v : n->inputs())
        if (v && --remaining[v] == 0 && !v->is_initializer()) {
          ref.erase(v);
          sim.erase(v);
        }
    }
    for (std::size_t k = 0; k < g.outputs().size(); ++k) {
      const value* v = g.outputs()[k];
      if (plan.type(v) != elem_float) continue;
      const tensor_difference d = difference(ref.at(v), sim.at(v));
      if (errors.size() <= k) errors.resize(k + 1);
      half_output_error& e = errors[k];
      e.output = v->name();
      e.cosine = std::min(e.cosine, d.cosine);
      e.max_rel_diff = std::max(e.max_rel_diff, d.max_rel);
      e.nonfinite = std::max(e.nonfinite, d.overflow);
    }
  }

  template <class Flag>
  void check_local(const node& n, const half_plan& plan, const std::vector<const tensor*>& ref_in,
                   const std::vector<tensor>& ref_out, Flag& flag) const {
    const std::string half_name = elem_name(plan.half);
    std::vector<tensor> rounded;
    rounded.reserve(ref_in.size());
    std::vector<const tensor*> in = ref_in;
    for (std::size_t i = 0; i < in.size(); ++i) {
      const value* v = n.input(i);
      if (!v || plan.type(v) != elem_float || plan.want(n, i) != plan.half || in[i]->dtype() != dtype::float32) continue;
      if (const tensor* c = plan.constant_tensor(v)) rounded.push_back(widen_half(plan.half_of(*c)));
      else rounded.push_back(round_through_half(*in[i], plan.bf16));
      const tensor_difference d = difference(*in[i], rounded.back());
      if (d.overflow) {
        flag(n, "input '" + v->name() + "' overflows " + half_name + " (max |x| = " + format_number(d.max_abs_ref) + ")");
        return;
      }
      in[i] = &rounded.back();
    }
    std::vector<tensor> out = run_node(n, in);
    for (std::size_t k = 0; k < out.size(); ++k) {
      const value* v = n.output(k);
      if (!v || plan.type(v) != elem_float || plan.final_type(v) != plan.half || out[k].dtype() != dtype::float32) continue;
      const tensor_difference d = difference(ref_out[k], round_through_half(out[k], plan.bf16));
      if (d.overflow) {
        flag(n, "output '" + v->name() + "' overflows " + half_name + " (max |x| = " + format_number(d.max_abs_ref) + ")");
        return;
      }
      if (d.rel_l2 > opt_.max_relative_error) {
        flag(n, "output '" + v->name() + "' has relative error " + format_number(d.rel_l2) + " in " + half_name);
        return;
      }
    }
  }

  const model& m_;
  const half_auto_block_options& opt_;
  const runtime::op_registry& registry_;
  std::vector<node*> order_;
  std::unordered_map<const value*, int> use_count_;
};

}  // namespace quench::pipeline::detail
