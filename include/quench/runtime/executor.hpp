#pragma once
// executor: runs a model's main graph on the CPU, one node at a time in topological order.
//
//     quench::runtime::executor ex(model);                   // checks every node first
//     auto outputs = ex.run({{"input", &image}},
//                           [](const std::string& name, const quench::tensor& t) { /* observe */ });
//
// The model must outlive the executor: initializers are used in place, never copied.
// Intermediates are freed right after their last use, so peak memory is the largest live set.
// An executor is not thread-safe; run one per thread (they may share the model).

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/memory_pool.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"
#include "quench/runtime/builtin_ops.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"

namespace quench::runtime {

struct executor_options {
  /// Threads for Conv/MatMul; results are bit-identical for any count.
  int threads = 1;
  /// Kernels to use (default: builtin_ops()).
  const op_registry* registry = nullptr;
  /// Recycle tensor storage between nodes and runs (quench/core/memory_pool.hpp) instead of
  /// returning it to the C heap; between runs the pool holds the buffers one run needs.
  bool reuse_memory = true;
};

/// Called for every graph input and every tensor a node produces, right after it exists.
using observer = std::function<void(const std::string& name, const tensor& t)>;
/// executor::run_lockstep's hook: a tensor a node produced, one per batch, once all batches have it.
using lockstep_editor = std::function<void(const std::string& name, const std::vector<tensor*>& batches)>;

/// Every reason the model cannot run, one line each ("node 'x' (Foo): no kernel for ai.onnx::Foo
/// at opset 17"); empty when it can.
inline std::vector<std::string> check(const model& m, const op_registry& registry = builtin_ops()) {
  std::vector<std::string> problems;
  for (const node* n : m.main_graph().nodes()) {
    const std::int64_t opset = m.opset(n->domain());
    const op_entry* e = registry.find(n->domain(), n->op_type(), opset);
    if (!e) {
      problems.push_back(n->context() + ": no kernel for " + (n->domain().empty() ? "ai.onnx" : n->domain()) +
                         "::" + n->op_type() + " at opset " + std::to_string(opset));
      continue;
    }
    if (const value* in0 = n->input(0); in0 && in0->elem_type() != 0 && in0->elem_type() < 32 &&
                                        !(e->input0_types & (std::uint32_t{1} << in0->elem_type()))) {
      problems.push_back(n->context() + ": input '" + in0->name() + "' has element type " +
                         (is_known_dtype(in0->elem_type()) ? to_string(in0->dtype()) : std::to_string(in0->elem_type())) +
                         ", which this kernel does not support");
      continue;
    }
    if (e->check) {
      try {
        e->check(*n, opset);
      } catch (const error& err) {
        problems.push_back(err.what());
      }
    }
  }
  return problems;
}

class executor {
 public:
  explicit executor(const model& m, executor_options opts = {})
      : model_(m), opts_(opts), registry_(opts.registry ? *opts.registry : builtin_ops()) {
    const auto problems = check(m, registry_);
    if (!problems.empty()) {
      std::string msg = std::to_string(problems.size()) + " node(s) cannot run:";
      for (const auto& p : problems) msg += "\n  " + p;
      throw_error(errc::unsupported_op, "executor", msg);
    }
    if (opts_.reuse_memory) pool_ = std::make_shared<memory_pool>();
    prepare();
  }

  /// The pool tensors of this executor's runs come from (null without reuse_memory).
  const std::shared_ptr<memory_pool>& pool() const noexcept { return pool_; }

  /// Graph inputs the caller must provide (those without an initializer to fall back on).
  const std::vector<std::string>& required_inputs() const noexcept { return required_inputs_; }
  /// Graph outputs, in order.
  const std::vector<std::string>& output_names() const noexcept { return output_names_; }

  /// Runs the graph. `inputs` maps graph input names to tensors (not copied). Returns the graph
  /// outputs in order, named after them.
  std::vector<tensor> run(const std::unordered_map<std::string, const tensor*>& inputs, const observer& watch = {}) {
    std::optional<memory_pool::scope> use_pool;
    if (pool_) use_pool.emplace(pool_);
    epoch_guard epoch{pool_.get()};
    run_state st = bind(inputs);
    if (watch)
      for (const value* v : model_.main_graph().inputs())
        if (const tensor* t = st.slot[slot_of_.at(v->name())]) watch(v->name(), *t);
    for (std::size_t k = 0; k < steps_.size(); ++k) {
      execute(k, st);
      if (watch)
        for (std::size_t o = 0; o < steps_[k].outputs.size(); ++o)
          if (steps_[k].outputs[o] >= 0) watch(steps_[k].n->output(o)->name(), st.owned[static_cast<std::size_t>(steps_[k].outputs[o])]);
      release(k, st);
    }
    return outputs(st);
  }

  /// Runs the graph on several batches in lockstep: every batch passes a node before any batch
  /// runs the next one, and `edit` sees each produced tensor of all batches at once. It may change
  /// them in place (later nodes read the changed values) and may change initializers of nodes not
  /// run yet. This is how a layer-by-layer correction (bias correction) measures a layer over all
  /// samples, corrects it and goes on, in one run instead of one run per layer. Memory is the
  /// live set of all batches together. Returns each batch's graph outputs.
  std::vector<std::vector<tensor>> run_lockstep(const std::vector<std::unordered_map<std::string, const tensor*>>& batches,
                                                const lockstep_editor& edit) {
    std::optional<memory_pool::scope> use_pool;
    if (pool_) use_pool.emplace(pool_);
    epoch_guard epoch{pool_.get()};
    std::vector<run_state> states;
    states.reserve(batches.size());
    for (const auto& b : batches) states.push_back(bind(b));
    std::vector<tensor*> produced(states.size());
    for (std::size_t k = 0; k < steps_.size(); ++k) {
      for (run_state& st : states) execute(k, st);
      if (edit)
        for (std::size_t o = 0; o < steps_[k].outputs.size(); ++o) {
          const int s = steps_[k].outputs[o];
          if (s < 0) continue;
          for (std::size_t b = 0; b < states.size(); ++b) produced[b] = &states[b].owned[static_cast<std::size_t>(s)];
          edit(steps_[k].n->output(o)->name(), produced);
        }
      for (run_state& st : states) release(k, st);
    }
    std::vector<std::vector<tensor>> result;
    for (run_state& st : states) result.push_back(outputs(st));
    return result;
  }

 private:
  /// The tensors of one run: slot -> the tensor it reads (an input, a constant or an owned one).
  struct run_state {
    std::vector<const tensor*> slot;
    std::vector<tensor> owned;
  };
  // The pool keeps what a run needed, for the next one (also when a kernel throws).
  struct epoch_guard {
    memory_pool* pool;
    ~epoch_guard() {
      if (pool) pool->end_epoch();
    }
  };

  run_state bind(const std::unordered_map<std::string, const tensor*>& inputs) const {
    const graph& g = model_.main_graph();
    run_state st{std::vector<const tensor*>(slot_count_, nullptr), std::vector<tensor>(slot_count_)};
    for (const auto& kv : inputs) {
      auto it = slot_of_.find(kv.first);
      if (it == slot_of_.end() || !g.find_value(kv.first)->is_graph_input())
        throw_error(errc::invalid_argument, "input '" + kv.first + "'", "the model has no graph input of that name");
      if (!kv.second) throw_error(errc::invalid_argument, "input '" + kv.first + "'", "is null");
      check_input(*g.find_value(kv.first), *kv.second);
      st.slot[it->second] = kv.second;
    }
    for (const auto& name : required_inputs_)
      if (!st.slot[slot_of_.at(name)]) throw_error(errc::invalid_argument, "input '" + name + "'", "is required but was not given");
    for (const auto& [s, t] : constants_)
      if (!st.slot[s]) st.slot[s] = t;
    return st;
  }

  /// Runs step k's kernel and stores its outputs in `st`.
  void execute(std::size_t k, run_state& st) {
    const step& sp = steps_[k];
    std::vector<const tensor*> ins;
    ins.reserve(sp.inputs.size());
    for (int s : sp.inputs) {
      const tensor* t = s < 0 ? nullptr : st.slot[static_cast<std::size_t>(s)];
      if (s >= 0 && !t) throw_error(errc::invalid_model, sp.n->context(), "reads a value that was never computed");
      ins.push_back(t);
    }
    std::vector<tensor> outs(sp.outputs.size());
    std::vector<tensor*> reusable(ins.size(), nullptr);
    for (std::size_t i : sp.reusable) {
      const auto s = static_cast<std::size_t>(sp.inputs[i]);
      if (st.slot[s] == &st.owned[s]) reusable[i] = &st.owned[s];
    }
    op_context ctx(*sp.n, sp.opset, std::move(ins), outs, opts_.threads, std::move(reusable));
    sp.entry->run(ctx);
    for (std::size_t o = 0; o < sp.outputs.size(); ++o) {
      const int s = sp.outputs[o];
      if (s < 0) continue;
      if (outs[o].dtype() == dtype::undefined) throw_error(errc::invalid_model, sp.n->context(), "did not produce output " + std::to_string(o));
      st.owned[static_cast<std::size_t>(s)] = std::move(outs[o]);
      st.slot[static_cast<std::size_t>(s)] = &st.owned[static_cast<std::size_t>(s)];
    }
  }

  /// Frees the values whose last use was step k.
  void release(std::size_t k, run_state& st) const {
    for (int s : steps_[k].release) {
      st.owned[static_cast<std::size_t>(s)] = tensor();
      st.slot[static_cast<std::size_t>(s)] = nullptr;
    }
  }

  std::vector<tensor> outputs(run_state& st) const {
    std::vector<tensor> result;
    for (std::size_t i = 0; i < output_slots_.size(); ++i) {
      const tensor* t = st.slot[output_slots_[i]];
      if (!t) throw_error(errc::invalid_model, "graph output '" + output_names_[i] + "'", "was not computed");
      // Move a computed output out; clone one that is also an input, a constant or listed twice.
      tensor copy = (!output_shared_[i] && t == &st.owned[output_slots_[i]]) ? std::move(st.owned[output_slots_[i]]) : t->clone();
      copy.set_name(output_names_[i]);
      result.push_back(std::move(copy));
    }
    return result;
  }

  struct step {
    const node* n;
    const op_entry* entry;
    std::int64_t opset;
    std::vector<int> inputs;   ///< slot per input, -1 = omitted
    std::vector<int> outputs;  ///< slot per output, -1 = omitted
    std::vector<int> release;  ///< slots whose last use is this step
    std::vector<std::size_t> reusable;  ///< input positions a kernel may overwrite (see op_context)
  };

  void prepare() {
    const graph& g = model_.main_graph();
    auto slot_for = [&](const value* v) -> int {
      auto [it, inserted] = slot_of_.try_emplace(v->name(), slot_count_);
      if (inserted) ++slot_count_;
      return static_cast<int>(it->second);
    };
    for (const value* v : g.inputs()) {
      slot_for(v);
      if (!v->is_initializer()) required_inputs_.push_back(v->name());
    }
    for (const value* v : g.initializers())
      constants_.emplace_back(static_cast<std::size_t>(slot_for(v)), v->initializer());

    // Nodes in dependency order, without touching the model: sort indices, not the graph.
    std::vector<const node*> order = dependency_order(g);
    for (const node* n : order) {
      step st{n, registry_.find(n->domain(), n->op_type(), model_.opset(n->domain())), model_.opset(n->domain()), {}, {}, {}, {}};
      for (const value* v : n->inputs()) st.inputs.push_back(v ? slot_for(v) : -1);
      for (const value* v : n->outputs()) st.outputs.push_back(v ? slot_for(v) : -1);
      steps_.push_back(std::move(st));
    }
    // Release each produced value after its last reader (graph outputs and constants stay).
    std::vector<int> last(slot_count_, -1);
    std::vector<bool> keep(slot_count_, false);
    for (const auto& c : constants_) keep[c.first] = true;
    for (const value* v : g.inputs()) keep[slot_of_.at(v->name())] = true;
    for (std::size_t k = 0; k < steps_.size(); ++k) {
      for (int s : steps_[k].inputs)
        if (s >= 0) last[static_cast<std::size_t>(s)] = static_cast<int>(k);
      for (int s : steps_[k].outputs)
        if (s >= 0 && last[static_cast<std::size_t>(s)] < static_cast<int>(k)) last[static_cast<std::size_t>(s)] = static_cast<int>(k);
    }
    for (const value* v : g.outputs()) {
      auto it = slot_of_.find(v->name());
      if (it == slot_of_.end()) throw_error(errc::invalid_model, "graph output '" + v->name() + "'", "is not computed by the graph");
      keep[it->second] = true;
      output_slots_.push_back(it->second);
      output_names_.push_back(v->name());
    }
    for (std::size_t s = 0; s < slot_count_; ++s)
      if (!keep[s] && last[s] >= 0) steps_[static_cast<std::size_t>(last[s])].release.push_back(static_cast<int>(s));
    // Inputs released by their step and named once in it may be overwritten by its kernel.
    for (step& st : steps_)
      for (std::size_t i = 0; i < st.inputs.size(); ++i) {
        const int s = st.inputs[i];
        if (s >= 0 && std::count(st.release.begin(), st.release.end(), s) && std::count(st.inputs.begin(), st.inputs.end(), s) == 1)
          st.reusable.push_back(i);
      }
    // An output listed twice, or that is also an input/constant, must be copied, not moved.
    for (std::size_t i = 0; i < output_slots_.size(); ++i) {
      bool shared = std::count(output_slots_.begin(), output_slots_.end(), output_slots_[i]) > 1;
      const value* v = g.find_value(output_names_[i]);
      shared = shared || v->is_graph_input() || v->is_initializer();
      output_shared_.push_back(shared);
    }
  }

  static std::vector<const node*> dependency_order(const graph& g) {
    const auto nodes = g.nodes();
    std::unordered_map<const node*, std::size_t> index;
    for (std::size_t i = 0; i < nodes.size(); ++i) index.emplace(nodes[i], i);
    std::vector<int> state(nodes.size(), 0);  // 0 new, 1 visiting, 2 done
    std::vector<const node*> order;
    order.reserve(nodes.size());
    // Iterative DFS over producers keeps file order where it is already valid.
    for (std::size_t root = 0; root < nodes.size(); ++root) {
      if (state[root]) continue;
      std::vector<std::pair<std::size_t, std::size_t>> stack{{root, 0}};
      state[root] = 1;
      while (!stack.empty()) {
        auto& [i, next] = stack.back();
        const auto deps = g.dependencies(*nodes[i]);
        if (next < deps.size()) {
          const value* v = deps[next++];
          if (!v->producer()) continue;
          const std::size_t p = index.at(v->producer());
          if (state[p] == 1) throw_error(errc::invalid_model, nodes[p]->context(), "is part of a cycle");
          if (state[p] == 0) {
            state[p] = 1;
            stack.emplace_back(p, 0);
          }
          continue;
        }
        state[i] = 2;
        order.push_back(nodes[i]);
        stack.pop_back();
      }
    }
    return order;
  }

  static void check_input(const value& v, const tensor& t) {
    const std::string ctx = "input '" + v.name() + "'";
    if (v.elem_type() != 0 && static_cast<std::int32_t>(t.dtype()) != v.elem_type())
      throw_error(errc::dtype_mismatch, ctx,
                  "expected element type " + to_string(v.dtype()) + ", found " + to_string(t.dtype()));
    if (!v.dims()) return;
    const auto& dims = *v.dims();
    if (dims.size() != t.rank())
      throw_shape_mismatch(ctx, "rank " + std::to_string(dims.size()), "rank " + std::to_string(t.rank()) + " " + to_string(t.shape()));
    for (std::size_t i = 0; i < dims.size(); ++i)
      if (dims[i].value && *dims[i].value != t.shape()[i])
        throw_shape_mismatch(ctx, "dimension " + std::to_string(i) + " = " + std::to_string(*dims[i].value),
                             std::to_string(t.shape()[i]) + " in " + to_string(t.shape()));
  }

  const model& model_;
  executor_options opts_;
  const op_registry& registry_;
  std::shared_ptr<memory_pool> pool_;
  std::unordered_map<std::string, std::size_t> slot_of_;
  std::size_t slot_count_ = 0;
  std::vector<std::string> required_inputs_;
  std::vector<std::pair<std::size_t, const tensor*>> constants_;
  std::vector<step> steps_;
  std::vector<std::size_t> output_slots_;
  std::vector<std::string> output_names_;
  std::vector<bool> output_shared_;
};

}  // namespace quench::runtime
