#pragma once
// Graph surgery shared by the passes in quench/graph/passes/: constants seen through sub-graph
// scopes, renames that keep sub-graph references valid, and node removal that keeps the name of
// the value downstream consumers (and graph outputs) know.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/model.hpp"

namespace quench::detail {

/// The value `v` stands for: a sub-graph's outer reference resolved to the enclosing graph's value.
inline const value* resolve_outer(const value* v) noexcept {
  while (v && v->outer()) v = v->outer();
  return v;
}

/// The data of `v` when it is a constant: an initializer of this or an enclosing scope. An
/// initializer that is also a graph input (the IR < 4 idiom) is only a default the caller may
/// override at run time, so it is not a constant.
inline const tensor* constant_tensor(const value* v) noexcept {
  v = resolve_outer(v);
  if (!v || !v->is_initializer() || v->is_graph_input()) return nullptr;
  return v->initializer();
}

/// Sub-graphs refer to an enclosing value by name through a stand-in. After `v` was renamed, or
/// took over the uses of another value, renames its stand-ins (and theirs, one scope further
/// down) to v's name; `stale` lists the names they may still carry.
inline void sync_stand_ins(value& v, const std::vector<std::string>& stale) {
  const auto uses = v.uses();
  for (const use& u : uses) {
    if (u.index != use::implicit_use) continue;
    for (graph* sub : u.user->subgraphs()) {
      value* stand_in = nullptr;
      if (value* c = sub->find_value(v.name()); c && c->outer() == &v) stand_in = c;
      for (std::size_t i = 0; !stand_in && i < stale.size(); ++i)
        if (value* c = sub->find_value(stale[i]); c && c->outer() == &v) stand_in = c;
      if (!stand_in) continue;
      if (stand_in->name() != v.name()) sub->rename_value(*stand_in, v.name());
      sync_stand_ins(*stand_in, stale);
    }
  }
}

/// Renames `v` in `g` and in every sub-graph that reads it.
inline void rename_value(graph& g, value& v, const std::string& name) {
  if (v.name() == name) return;
  std::string old = v.name();
  g.rename_value(v, name);
  sync_stand_ins(v, {std::move(old)});
}

/// Drops `v` from the graph's value_info list (a graph output must not be listed there too).
inline void drop_value_info(graph& g, const value& v) {
  const auto infos = g.value_infos();
  if (std::find(infos.begin(), infos.end(), &v) == infos.end()) return;
  g.clear_value_infos();
  for (value* w : infos)
    if (w != &v) g.add_value_info(*w);
}

/// Removes `n`, whose output `gone` is replaced everywhere (node inputs, sub-graph reads, graph
/// output slots) by `keep`. With `take_name` — implied when `gone` is a graph output — `keep` is
/// renamed to gone's name afterwards, so the tensor name consumers and users know survives (a
/// graph output keeps its name and its declared type). `keep` must not already be a graph output when `gone` is one. Both values
/// must have the same type and shape; what is known of gone's (after shape inference) is kept.
inline void bypass_node(graph& g, node& n, value& gone, value& keep, bool take_name) {
  if (gone.is_graph_output() && keep.is_graph_output())
    throw_error(errc::invalid_argument, n.context(), "cannot merge two graph outputs");
  const std::string name = gone.name();
  take_name = take_name || gone.is_graph_output();
  if (gone.is_graph_output()) {
    // The declared output type is what the model's users see; keep it when it says more.
    if (gone.elem_type() != 0) keep.set_elem_type(gone.elem_type());
    if (gone.dims()) keep.set_dims(gone.dims());
    keep.set_type_residual(gone.type_residual());
    keep.set_info_residual(gone.info_residual());
    drop_value_info(g, keep);
  }
  // Every caller merges values of one type and shape; keep what is known about it.
  if (keep.elem_type() == 0) keep.set_elem_type(gone.elem_type());
  if (!keep.dims() && gone.dims()) keep.set_dims(gone.dims());
  g.replace_all_uses(gone, keep, /*include_outputs=*/true);
  g.remove_node(n);
  sync_stand_ins(keep, {name});
  if (take_name) rename_value(g, keep, name);
}

/// Replaces single-output node `n` by an initializer holding `t`, under the output's name.
inline value& replace_by_initializer(graph& g, node& n, tensor t) {
  value& out = *n.output(0);
  const std::string name = out.name();
  // The output steps aside under a temporary name so the initializer can take its own; the
  // sub-graph stand-ins follow it there and back.
  const std::string temporary = g.unique_name(name + "_replaced");
  rename_value(g, out, temporary);
  t.set_name(name);
  value& init = g.add_initializer(std::move(t));
  g.replace_all_uses(out, init, /*include_outputs=*/true);
  g.remove_node(n);
  sync_stand_ins(init, {temporary});
  return init;
}

/// Makes input `i` of `n` the new constant `t`. When the old input was an initializer of `g`
/// only `n` read (and no graph input or output), it is replaced under the same name, so a
/// folded weight keeps its name; otherwise (a shared or outer weight) the new initializer gets a
/// fresh name derived from `base` and the old one stays for its other readers.
inline value& set_constant_input(graph& g, node& n, std::size_t i, tensor t, const std::string& base) {
  value* old = n.input(i);
  const bool exclusive = old && old->is_initializer() && !old->is_graph_input() && !old->is_graph_output() &&
                         old->uses().size() == 1 && g.find_value(old->name()) == old;
  std::string name;
  if (exclusive) {
    name = old->name();
    g.set_input(n, i, nullptr);
    g.remove_value(*old);
  } else {
    name = g.unique_name(base);
  }
  t.set_name(name);
  value& v = g.add_initializer(std::move(t));
  g.set_input(n, i, &v);
  return v;
}

/// Opset of the default domain for a model's passes; nodes of a domain without an import are
/// rejected first, since no pass can tell which operator version they mean.
inline std::int64_t default_opset(const model& m) {
  m.check_opset_imports();
  return m.opset("");
}

inline void check_opset(std::int64_t opset) {
  if (opset < 1) throw_error(errc::invalid_argument, {}, "opset version " + std::to_string(opset) + " is not a valid ai.onnx opset");
}

}  // namespace quench::detail
