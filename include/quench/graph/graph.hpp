#pragma once
// graph: nodes and values of one ONNX graph (the main graph, or the body of If/Loop/Scan), with
// the producer/consumer index kept consistent by every mutation.
//
//     quench::graph g;
//     auto& x = g.add_input("x", 1, {{quench::dim{1}}, {quench::dim{8}}});
//     auto& w = g.add_initializer(quench::tensor(quench::dtype::float32, {8, 4}, "w"));
//     auto& mm = g.add_node("MatMul", {&x, &w}, {"y"});
//     g.add_output(*mm.output(0));
//     g.check_invariants();

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/attribute.hpp"
#include "quench/graph/node.hpp"
#include "quench/graph/value.hpp"

namespace quench {

class graph {
 public:
  /// A main graph.
  graph() = default;
  /// A sub-graph held by an attribute of `owner`, a node of `parent`.
  graph(graph* parent, node* owner) : parent_(parent), owner_(owner) {}
  // Nodes and values point back at their graph: it never moves.
  graph(const graph&) = delete;
  graph& operator=(const graph&) = delete;
  ~graph() = default;

  const std::string& name() const noexcept { return name_; }
  void set_name(std::string n) { name_ = std::move(n); }
  const std::string& doc_string() const noexcept { return doc_string_; }
  void set_doc_string(std::string d) { doc_string_ = std::move(d); }
  /// Serialized GraphProto with the fields quench does not model (sparse_initializer,
  /// quantization_annotation, unknown fields); written back on save.
  const std::string& residual() const noexcept { return residual_; }
  void set_residual(std::string r) { residual_ = std::move(r); }

  graph* parent() const noexcept { return parent_; }
  node* owner() const noexcept { return owner_; }

  // ---- values -----------------------------------------------------------------------------

  /// The value named `name` in this graph's own scope, or null.
  value* find_value(std::string_view name) const {
    auto it = values_.find(std::string(name));
    return it == values_.end() ? nullptr : it->second.get();
  }
  /// The value named `name` in this scope; throws invalid_model naming `context` if absent.
  value& at(std::string_view name, const std::string& context = {}) const {
    value* v = find_value(name);
    if (!v) throw_error(errc::invalid_model, context, "value '" + std::string(name) + "' is not defined");
    return *v;
  }

  const std::vector<value*>& inputs() const noexcept { return inputs_; }
  const std::vector<value*>& outputs() const noexcept { return outputs_; }
  /// Initializers in file order.
  const std::vector<value*>& initializers() const noexcept { return initializers_; }
  /// Values with a value_info entry, in file order.
  const std::vector<value*>& value_infos() const noexcept { return value_infos_; }
  std::size_t value_count() const noexcept { return values_.size(); }

  /// Adds a graph input with an element type (ONNX number) and optional shape.
  value& add_input(std::string name, std::int32_t elem_type = 0, std::optional<std::vector<dim>> dims = {}) {
    value& v = new_value(std::move(name), "graph input");
    v.elem_type_ = elem_type;
    v.dims_ = std::move(dims);
    v.is_input_ = true;
    inputs_.push_back(&v);
    return v;
  }

  /// Marks an existing value as graph input (e.g. an initializer of an IR < 4 model listed as input).
  void mark_input(value& v) {
    check_owned(v);
    if (v.is_input_) throw_error(errc::invalid_model, {}, "value '" + v.name() + "' is listed as graph input twice");
    v.is_input_ = true;
    inputs_.push_back(&v);
  }

  /// Appends `v` to the graph outputs (a value may be an output only once).
  void add_output(value& v) {
    check_owned(v);
    if (v.is_output_) throw_error(errc::invalid_model, {}, "value '" + v.name() + "' is listed as graph output twice");
    v.is_output_ = true;
    outputs_.push_back(&v);
  }
  void remove_output(value& v) {
    check_owned(v);
    outputs_.erase(std::remove(outputs_.begin(), outputs_.end(), &v), outputs_.end());
    v.is_output_ = false;
  }
  /// Replaces output `i` by `v`, keeping the position.
  void set_output(std::size_t i, value& v) {
    check_owned(v);
    if (i >= outputs_.size()) throw_error(errc::out_of_range, {}, "graph has no output " + std::to_string(i));
    outputs_[i]->is_output_ = false;
    outputs_[i] = &v;
    v.is_output_ = true;
  }

  /// Adds an initializer named after the tensor (a fresh name if it has none).
  value& add_initializer(tensor t) {
    if (t.name().empty()) t.set_name(unique_name("const"));
    value& v = new_value(t.name(), "initializer");
    v.elem_type_ = static_cast<std::int32_t>(t.dtype());
    set_static_dims(v, t.shape());
    v.initializer_ = std::make_unique<tensor>(std::move(t));
    initializers_.push_back(&v);
    return v;
  }
  /// Gives an existing value (a graph input, in IR < 4 models) initializer data.
  void set_initializer(value& v, tensor t) {
    check_owned(v);
    if (v.producer_) throw_error(errc::invalid_model, {}, "value '" + v.name() + "' is produced by a node and cannot be an initializer");
    if (!v.initializer_) initializers_.push_back(&v);
    t.set_name(v.name());
    // A graph input keeps its declared type and shape (the IR < 4 "default value" idiom).
    if (!v.is_input_ || v.elem_type_ == 0) v.elem_type_ = static_cast<std::int32_t>(t.dtype());
    if (!v.is_input_) set_static_dims(v, t.shape());
    v.initializer_ = std::make_unique<tensor>(std::move(t));
  }
  /// Turns an initializer back into a plain value (it must then get a producer or be removed).
  std::unique_ptr<tensor> take_initializer(value& v) {
    check_owned(v);
    initializers_.erase(std::remove(initializers_.begin(), initializers_.end(), &v), initializers_.end());
    return std::move(v.initializer_);
  }

  /// Declares a constant whose data the graph keeps opaque (a sparse initializer), so nodes can
  /// read it.
  value& add_opaque_constant(std::string name) {
    value& v = new_value(std::move(name), "sparse initializer");
    v.opaque_constant_ = true;
    return v;
  }

  /// Records that `v` has a value_info entry (kept in this order on save).
  void add_value_info(value& v) {
    check_owned(v);
    if (std::find(value_infos_.begin(), value_infos_.end(), &v) == value_infos_.end()) value_infos_.push_back(&v);
  }
  void clear_value_infos() { value_infos_.clear(); }

  /// A local stand-in for value `name` of an enclosing graph, created on first use. The node owning
  /// this sub-graph is recorded as an implicit user of the outer value, so passes on the enclosing
  /// graph see the dependency. Throws invalid_model when no enclosing scope defines `name`.
  value& outer_ref(const std::string& name, const std::string& context = {}) {
    if (value* v = find_value(name)) return *v;
    if (!parent_) throw_error(errc::invalid_model, context, "value '" + name + "' is not defined in any enclosing scope");
    value* outer = parent_->find_value(name);
    if (!outer) outer = &parent_->outer_ref(name, context);
    value& v = new_value(name, "outer reference");
    v.outer_ = outer;
    v.elem_type_ = outer->elem_type_;
    v.dims_ = outer->dims_;
    outer->uses_.push_back(use{owner_, use::implicit_use});
    return v;
  }

  /// Renames a value (and its initializer tensor).
  void rename_value(value& v, std::string new_name) {
    check_owned(v);
    if (new_name == v.name_) return;
    if (find_value(new_name)) throw_error(errc::invalid_argument, {}, "value name '" + new_name + "' is already used");
    auto it = values_.find(v.name_);
    auto holder = std::move(it->second);
    values_.erase(it);
    v.name_ = std::move(new_name);
    if (v.initializer_) v.initializer_->set_name(v.name_);
    values_.emplace(v.name_, std::move(holder));
  }

  /// A name used by no value or node in this graph, its enclosing graphs or its sub-graphs:
  /// `prefix`, else `prefix_1`, `prefix_2`, ...
  std::string unique_name(std::string_view prefix) {
    graph* root = this;
    while (root->parent_) root = root->parent_;
    std::string candidate(prefix);
    while (candidate.empty() || root->name_in_use(candidate)) {
      candidate = std::string(prefix) + "_" + std::to_string(++name_counter_);
    }
    return candidate;
  }

  // ---- nodes ------------------------------------------------------------------------------

  /// Nodes in their current order (file order until topological_sort or an insertion).
  std::vector<node*> nodes() const {
    std::vector<node*> out;
    out.reserve(nodes_.size());
    for (const auto& n : nodes_) out.push_back(n.get());
    return out;
  }
  std::size_t node_count() const noexcept { return nodes_.size(); }

  /// Appends a node consuming `inputs` (null = omitted optional input) and producing new values
  /// named `outputs` ("" = omitted optional output, no value). Names must be new in this graph.
  node& add_node(std::string op_type, const std::vector<value*>& inputs, const std::vector<std::string>& outputs,
                 std::string name = {}, std::string domain = {}) {
    // Validate everything before the first mutation, so a failure leaves the graph unchanged.
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].empty()) continue;
      if (find_value(outputs[i]) || std::find(outputs.begin(), outputs.begin() + static_cast<std::ptrdiff_t>(i), outputs[i]) !=
                                         outputs.begin() + static_cast<std::ptrdiff_t>(i))
        throw_error(errc::invalid_model, {}, "duplicate value name '" + outputs[i] + "' (output of a new " + op_type + " node)");
    }
    for (value* in : inputs)
      if (in) check_owned(*in);
    auto n = std::unique_ptr<node>(new node());
    n->op_type_ = std::move(op_type);
    n->domain_ = std::move(domain);
    n->name_ = std::move(name);
    n->owner_ = this;
    node& ref = *n;
    for (value* in : inputs) append_input(ref, in);
    for (const auto& out : outputs) append_output(ref, out);
    nodes_.push_back(std::move(n));
    return ref;
  }

  /// Adds an output to `n` producing a new value (or no value for ""); returns it.
  value* append_output(node& n, const std::string& out_name) {
    check_owned(n);
    if (out_name.empty()) {
      n.outputs_.push_back(nullptr);
      return nullptr;
    }
    value& v = new_value(out_name, n.context() + " output");
    v.producer_ = &n;
    v.producer_output_ = static_cast<int>(n.outputs_.size());
    n.outputs_.push_back(&v);
    return &v;
  }

  /// Appends an input to `n`.
  void append_input(node& n, value* v) {
    check_owned(n);
    if (v) {
      check_owned(*v);
      v->uses_.push_back(use{&n, static_cast<int>(n.inputs_.size())});
    }
    n.inputs_.push_back(v);
  }

  /// Rewires input `i` of `n` to `v` (null = omitted); `i == inputs().size()` appends.
  void set_input(node& n, std::size_t i, value* v) {
    check_owned(n);
    if (i == n.inputs_.size()) return append_input(n, v);
    if (i > n.inputs_.size()) throw_error(errc::out_of_range, n.context(), "has no input " + std::to_string(i));
    if (v) check_owned(*v);
    if (value* old = n.inputs_[i]) erase_use(*old, use{&n, static_cast<int>(i)});
    n.inputs_[i] = v;
    if (v) v->uses_.push_back(use{&n, static_cast<int>(i)});
  }

  /// Drops trailing inputs of `n` beyond `count`.
  void truncate_inputs(node& n, std::size_t count) {
    check_owned(n);
    while (n.inputs_.size() > count) {
      if (value* old = n.inputs_.back()) erase_use(*old, use{&n, static_cast<int>(n.inputs_.size() - 1)});
      n.inputs_.pop_back();
    }
  }

  /// Makes every node input (and sub-graph reference) that reads `old` read `repl` instead. With
  /// `include_outputs`, graph outputs listing `old` list `repl` (`old` stops being an output).
  void replace_all_uses(value& old, value& repl, bool include_outputs = false) {
    check_owned(old);
    check_owned(repl);
    if (&old == &repl) return;
    const auto uses = old.uses_;
    for (const use& u : uses) {
      if (u.index == use::implicit_use) {
        // One sub-graph of u.user reads `old` through a stand-in: point it at `repl`. If that
        // sub-graph already had a stand-in for `repl`, the two merge and the use is not repeated.
        bool merged = false;
        for (graph* sub : u.user->subgraphs())
          if (sub->retarget_outer(old, repl, merged)) break;
        if (!merged) repl.uses_.push_back(u);
      } else {
        u.user->inputs_[static_cast<std::size_t>(u.index)] = &repl;
        repl.uses_.push_back(u);
      }
    }
    old.uses_.clear();
    if (include_outputs && old.is_output_) {
      for (auto& o : outputs_)
        if (o == &old) o = &repl;
      old.is_output_ = false;
      repl.is_output_ = true;
    }
  }

  /// Removes `n`. Its output values are removed too; they must have no uses and not be graph
  /// outputs (replace their uses first).
  void remove_node(node& n) {
    check_owned(n);
    for (value* out : n.outputs_) {
      if (!out) continue;
      if (!out->uses_.empty() || out->is_output_)
        throw_error(errc::invalid_argument, n.context(),
                    "cannot remove: its output '" + out->name() + "' is still " +
                        (out->is_output_ ? "a graph output" : "used by " + out->uses_.front().user->context()));
    }
    detach(n);
    for (value* out : n.outputs_)
      if (out) erase_value(*out);
    nodes_.erase(std::find_if(nodes_.begin(), nodes_.end(), [&](const auto& p) { return p.get() == &n; }));
  }

  /// Moves `n` to just before `before` in the node order (both in this graph).
  void move_before(node& n, node& before) {
    check_owned(n);
    check_owned(before);
    auto from = std::find_if(nodes_.begin(), nodes_.end(), [&](const auto& p) { return p.get() == &n; });
    auto holder = std::move(*from);
    nodes_.erase(from);
    auto to = std::find_if(nodes_.begin(), nodes_.end(), [&](const auto& p) { return p.get() == &before; });
    nodes_.insert(to, std::move(holder));
  }

  /// Removes a value that has no producer and no uses (an unused initializer or input).
  void remove_value(value& v) {
    check_owned(v);
    if (v.producer_ || !v.uses_.empty() || v.is_output_ || v.opaque_constant_)
      throw_error(errc::invalid_argument, {}, "value '" + v.name() + "' is still produced or used");
    erase_value(v);
  }

  // ---- whole-graph algorithms ------------------------------------------------------------

  /// Orders nodes so every node comes after the producers of its inputs (including values its
  /// sub-graphs read), keeping the current order wherever dependencies allow (stable, so the
  /// same graph always sorts the same way). Throws invalid_model naming a node on a cycle.
  void topological_sort() {
    const std::size_t count = nodes_.size();
    std::unordered_map<const node*, std::size_t> index;
    index.reserve(count);
    for (std::size_t i = 0; i < count; ++i) index.emplace(nodes_[i].get(), i);
    std::vector<std::vector<std::size_t>> successors(count);
    std::vector<std::size_t> pending(count, 0);
    for (std::size_t i = 0; i < count; ++i) {
      for (const value* v : dependencies(*nodes_[i])) {
        if (!v->producer_) continue;
        const std::size_t p = index.at(v->producer_);
        successors[p].push_back(i);
        ++pending[i];
      }
    }
    std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
    for (std::size_t i = 0; i < count; ++i)
      if (pending[i] == 0) ready.push(i);
    std::vector<std::size_t> order;
    order.reserve(count);
    while (!ready.empty()) {
      const std::size_t i = ready.top();
      ready.pop();
      order.push_back(i);
      for (std::size_t s : successors[i])
        if (--pending[s] == 0) ready.push(s);
    }
    if (order.size() != count) {
      // Walk back through unsorted producers until a node repeats: that node is on a cycle.
      std::size_t at = 0;
      while (pending[at] == 0) ++at;
      std::vector<bool> seen(count, false);
      while (!seen[at]) {
        seen[at] = true;
        for (const value* v : dependencies(*nodes_[at])) {
          if (v->producer_ && pending[index.at(v->producer_)] != 0) {
            at = index.at(v->producer_);
            break;
          }
        }
      }
      throw_error(errc::invalid_model, nodes_[at]->context(), "is part of a cycle");
    }
    std::vector<std::unique_ptr<node>> sorted;
    sorted.reserve(count);
    for (std::size_t i : order) sorted.push_back(std::move(nodes_[i]));
    nodes_ = std::move(sorted);
  }

  /// Removes nodes whose outputs do not reach a graph output, and initializers nothing reads.
  /// Graph inputs are kept. Returns the number of nodes removed.
  std::size_t remove_dead_code() {
    std::unordered_set<const node*> live;
    std::vector<const node*> stack;
    for (value* o : outputs_)
      if (o->producer_ && live.insert(o->producer_).second) stack.push_back(o->producer_);
    while (!stack.empty()) {
      const node* n = stack.back();
      stack.pop_back();
      for (const value* v : dependencies(*n))
        if (v->producer_ && live.insert(v->producer_).second) stack.push_back(v->producer_);
    }
    std::size_t removed = 0;
    // Reverse order removes consumers before producers, so uses drain naturally.
    for (std::size_t i = nodes_.size(); i-- > 0;) {
      node& n = *nodes_[i];
      if (live.count(&n)) continue;
      detach(n);
      for (value* out : n.outputs_)
        if (out) {
          out->producer_ = nullptr;
          out->uses_.clear();  // only dead nodes can use it
          erase_value(*out);
        }
      nodes_.erase(nodes_.begin() + static_cast<std::ptrdiff_t>(i));
      ++removed;
    }
    for (std::size_t i = initializers_.size(); i-- > 0;) {
      value* v = initializers_[i];
      if (v->uses_.empty() && !v->is_output_ && !v->is_input_) erase_value(*v);
    }
    return removed;
  }

  /// Verifies the producer/use index against the node lists and the value table, recursively
  /// into sub-graphs. Throws invalid_model describing the first inconsistency. Tests call it
  /// after every mutation; converters may call it after their own surgery.
  void check_invariants() const {
    auto fail = [](const std::string& what) { throw_error(errc::invalid_model, "graph invariant", what); };
    std::unordered_map<const value*, std::size_t> expected_uses;
    std::unordered_set<const node*> own_nodes;
    for (const auto& np : nodes_) {
      const node& n = *np;
      own_nodes.insert(&n);
      if (n.owner_ != this) fail(n.context() + " has the wrong owner graph");
      for (std::size_t i = 0; i < n.inputs_.size(); ++i) {
        const value* v = n.inputs_[i];
        if (!v) continue;
        if (find_value(v->name_) != v) fail(n.context() + " input " + std::to_string(i) + " is not a value of this graph");
        const use u{const_cast<node*>(&n), static_cast<int>(i)};
        if (std::count(v->uses_.begin(), v->uses_.end(), u) != 1)
          fail("value '" + v->name_ + "' does not list " + n.context() + " input " + std::to_string(i) + " exactly once");
        ++expected_uses[v];
      }
      for (std::size_t i = 0; i < n.outputs_.size(); ++i) {
        const value* v = n.outputs_[i];
        if (!v) continue;
        if (find_value(v->name_) != v) fail(n.context() + " output " + std::to_string(i) + " is not a value of this graph");
        if (v->producer_ != &n || v->producer_output_ != static_cast<int>(i))
          fail("value '" + v->name_ + "' does not name " + n.context() + " as its producer");
      }
      for (const graph* sub : n.subgraphs()) {
        if (sub->parent_ != this || sub->owner_ != &n) fail("a sub-graph of " + n.context() + " has the wrong parent");
        sub->check_invariants();
        for (const auto& kv : sub->values_) {
          const value* outer = kv.second->outer_;
          if (!outer) continue;
          if (find_value(outer->name_) != outer) fail("sub-graph stand-in '" + kv.first + "' points outside its parent");
          ++expected_uses[outer];
        }
      }
    }
    for (const auto& kv : values_) {
      const value& v = *kv.second;
      if (kv.first != v.name_) fail("value table key '" + kv.first + "' differs from its value's name '" + v.name_ + "'");
      if (v.producer_ && !own_nodes.count(v.producer_)) fail("value '" + v.name_ + "' has a producer outside this graph");
      if (v.producer_ && (v.is_input_ || v.initializer_)) fail("value '" + v.name_ + "' is produced by a node and is also a graph input or initializer");
      if (v.outer_ && (v.producer_ || v.initializer_)) fail("outer reference '" + v.name_ + "' has a local producer");
      for (const use& u : v.uses_)
        if (!own_nodes.count(u.user)) fail("value '" + v.name_ + "' lists a user outside this graph");
      const auto want = expected_uses.count(&v) ? expected_uses.at(&v) : 0;
      if (v.uses_.size() != want)
        fail("value '" + v.name_ + "' lists " + std::to_string(v.uses_.size()) + " uses, the nodes show " + std::to_string(want));
      if (!v.producer_ && !v.is_input_ && !v.initializer_ && !v.outer_ && !v.opaque_constant_ && (v.has_uses() || v.is_output_))
        fail("value '" + v.name_ + "' is used but has no producer, is no graph input and no initializer");
      if (v.is_input_ != (std::count(inputs_.begin(), inputs_.end(), &v) == 1)) fail("value '" + v.name_ + "' disagrees with the graph input list");
      if (v.is_output_ != (std::count(outputs_.begin(), outputs_.end(), &v) == 1)) fail("value '" + v.name_ + "' disagrees with the graph output list");
      if (static_cast<bool>(v.initializer_) != (std::count(initializers_.begin(), initializers_.end(), &v) == 1))
        fail("value '" + v.name_ + "' disagrees with the initializer list");
    }
  }

  /// Values a node depends on: its inputs and the outer values its sub-graphs read.
  std::vector<const value*> dependencies(const node& n) const {
    std::vector<const value*> deps;
    for (const value* v : n.inputs_)
      if (v) deps.push_back(v);
    for (const graph* sub : n.subgraphs())
      for (const auto& kv : sub->values_)
        if (kv.second->outer_) deps.push_back(kv.second->outer_);
    return deps;
  }

 private:
  value& new_value(std::string name, const std::string& what) {
    if (name.empty()) throw_error(errc::invalid_model, {}, "a " + what + " has an empty name");
    auto [it, inserted] = values_.try_emplace(name, nullptr);
    if (!inserted)
      throw_error(errc::invalid_model, {}, std::string("duplicate value name '") + name + "' (" + what + ")");
    it->second.reset(new value(std::move(name)));
    return *it->second;
  }

  static void set_static_dims(value& v, const shape& s) {
    std::vector<dim> d;
    for (auto x : s) d.push_back(dim{x, {}});
    v.dims_ = std::move(d);
  }

  void check_owned(const value& v) const {
    if (find_value(v.name_) != &v)
      throw_error(errc::invalid_argument, {}, "value '" + v.name_ + "' does not belong to this graph");
  }
  void check_owned(const node& n) const {
    if (n.owner_ != this) throw_error(errc::invalid_argument, n.context(), "does not belong to this graph");
  }

  static void erase_use(value& v, const use& u) {
    auto it = std::find(v.uses_.begin(), v.uses_.end(), u);
    if (it != v.uses_.end()) v.uses_.erase(it);
  }

  /// Drops `n`'s uses of its inputs and its sub-graphs' implicit uses of outer values.
  void detach(node& n) {
    for (std::size_t i = 0; i < n.inputs_.size(); ++i)
      if (value* v = n.inputs_[i]) erase_use(*v, use{&n, static_cast<int>(i)});
    for (graph* sub : n.subgraphs())
      for (const auto& kv : sub->values_)
        if (value* outer = kv.second->outer_) erase_use(*outer, use{&n, use::implicit_use});
  }

  void erase_value(value& v) {
    if (v.is_input_) inputs_.erase(std::remove(inputs_.begin(), inputs_.end(), &v), inputs_.end());
    if (v.initializer_) initializers_.erase(std::remove(initializers_.begin(), initializers_.end(), &v), initializers_.end());
    value_infos_.erase(std::remove(value_infos_.begin(), value_infos_.end(), &v), value_infos_.end());
    values_.erase(v.name_);
  }

  /// Points this sub-graph's stand-in for `old` at `repl`; returns false when this sub-graph has
  /// none. Sets `merged` when an existing stand-in for `repl` absorbed it.
  bool retarget_outer(value& old, value& repl, bool& merged) {
    for (auto& kv : values_) {
      if (kv.second->outer_ != &old) continue;
      value& stand_in = *kv.second;
      if (value* existing = find_value(repl.name_)) {
        if (existing->outer_ != &repl)
          throw_error(errc::invalid_argument, {}, "sub-graph value '" + repl.name_ + "' would shadow the outer value it should read");
        stand_in.outer_ = nullptr;
        replace_all_uses(stand_in, *existing);
        erase_value(stand_in);
        merged = true;
      } else {
        stand_in.outer_ = &repl;
        rename_value(stand_in, repl.name_);
      }
      return true;
    }
    return false;
  }

  bool name_in_use(const std::string& name) const {
    if (values_.count(name)) return true;
    for (const auto& n : nodes_) {
      if (n->name_ == name) return true;
      for (const graph* sub : n->subgraphs())
        if (sub->name_in_use(name)) return true;
    }
    return false;
  }

  std::string name_, doc_string_, residual_;
  graph* parent_ = nullptr;
  node* owner_ = nullptr;
  std::vector<std::unique_ptr<node>> nodes_;
  std::unordered_map<std::string, std::unique_ptr<value>> values_;
  std::vector<value*> inputs_, outputs_, initializers_, value_infos_;
  std::uint64_t name_counter_ = 0;
};

}  // namespace quench
