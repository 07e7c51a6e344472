#pragma once
// prune: pruning masks on the weights of an ONNX model (Conv / ConvTranspose / Gemm / MatMul), and
// physical removal of pruned channels.
//
// Masks are torch.nn.utils.prune's (quench/prune/): unstructured L1 or random per weight, global
// L1 over all weights at once, or Ln-structured along a dimension. `dim` follows PyTorch's module
// convention -- 0 = output channels (filters), 1 = input channels -- and is mapped to the ONNX
// layout of each operator (Conv [K, C, ..], ConvTranspose [C, K, ..], Gemm by transB, MatMul
// [C, K]). Zeros already in a weight count as pruned, so running prune on a pruned model prunes
// `amount` of what is left, as a second torch prune call would (PruningContainer).
//
// Channel removal (`removal = remove`) takes structured pruning to the graph: output channels of
// a channel group (pipeline/detail/prune_channel_groups.hpp -- the layers whose outputs meet in
// residual Adds or gating Muls prune together, so all branches agree) are ranked by the sum of
// their filters' Ln norms over the group's sources, the smallest `amount` are removed from every
// source weight and bias, every BatchNormalization / depthwise Conv / per-channel constant in
// between, and the input channels of every consumer Conv / Gemm / MatMul. The saved model is
// smaller and faster and its outputs have the same shapes. `removal = silence` makes the same
// choice but only zeroes the channels (weights, biases, BN scale and shift, ...), keeping every
// shape: the pruned model's outputs equal the silenced model's (the tests check it in ONNX
// Runtime). A group is removed only when a zeroed channel provably reaches its consumers as exact
// zeros; otherwise (e.g. through a Sigmoid) it is skipped with the reason.
//
//     quench::pipeline::prune_options o;
//     o.amount = quench::prune::prune_amount::fraction(0.3);
//     o.structured = true;                                   // L2 filters
//     o.removal = quench::pipeline::channel_removal::remove;
//     auto report = quench::pipeline::prune(m, o);          // report.parameters_before / _after

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"
#include "quench/pipeline/detail/prune_channel_groups.hpp"
#include "quench/pipeline/sparsify.hpp"
#include "quench/prune/amount.hpp"
#include "quench/prune/structured.hpp"
#include "quench/prune/unstructured.hpp"
#include "quench/sparsity/nm_mask.hpp"

namespace quench::pipeline {

enum class channel_removal {
  none,     ///< masks only
  silence,  ///< zero whole channels through their group, shapes unchanged
  remove,   ///< delete them from the graph
};

struct prune_options {
  quench::prune::prune_amount amount = quench::prune::prune_amount::fraction(0.3);
  bool structured = false;  ///< Ln-structured slices instead of single weights
  int dim = 0;              ///< structured: 0 = output channels, 1 = input channels (PyTorch's convention)
  double norm = 2;          ///< structured: the n of the Ln norm (0, > 0, +-inf)
  bool global = false;      ///< unstructured: one L1 ranking over all weights
  bool random = false;      ///< unstructured: random instead of L1
  std::uint64_t seed = 0;   ///< for random
  bool respect_zeros = true;  ///< zeros already in a weight count as pruned
  channel_removal removal = channel_removal::none;  ///< needs structured, dim 0
  /// Removal: keep a multiple of this many channels (the kept count rounded up, Torch-Pruning's
  /// round_to). CPU and GPU kernels block channels by 8 or 16; 45 channels can run slower than 64.
  std::int64_t channel_multiple = 8;
  std::set<std::string> op_types{"Conv", "ConvTranspose", "Gemm", "MatMul"};
  std::set<std::string> exclude;  ///< node or weight names left as they are
};

struct pruned_weight {
  std::string name, node, op_type;
  shape dims_before, dims_after;
  std::int64_t elements = 0, zeros = 0;
  double sparsity() const noexcept { return elements ? static_cast<double>(zeros) / static_cast<double>(elements) : 0.0; }
};

/// A channel group considered for removal.
struct pruned_group {
  std::vector<std::string> sources, sinks;
  std::int64_t channels_before = 0, channels_after = 0;
  bool applied = false;
  std::string reason;  ///< why not applied, or a note on what was applied
};

struct prune_report {
  std::vector<pruned_weight> weights;
  std::vector<skipped_weight> skipped;
  std::vector<pruned_group> groups;
  std::int64_t parameters_before = 0, parameters_after = 0;  ///< elements of all initializers
  std::int64_t nonzero_before = 0, nonzero_after = 0;        ///< non-zero elements of float initializers
  std::size_t bytes_before = 0, bytes_after = 0;             ///< initializer bytes
};

namespace detail {

/// The ONNX axis of PyTorch's `dim` (0 = output, 1 = input channels) for a weight site.
inline std::size_t torch_dim_axis(const weight_site& s, int dim) {
  if (dim == 0) return s.axes.out_axis;
  if (dim == 1) return s.axes.in_axis;
  return static_cast<std::size_t>(dim);  // other dims are the same in both layouts (kernel dims)
}

inline tensor nonzero_mask(const tensor& w) {
  tensor m(dtype::uint8, w.shape(), w.name() + "_mask");
  const std::vector<float> f = sparsity::float_values(w);
  auto* b = reinterpret_cast<std::uint8_t*>(m.bytes());
  for (std::size_t i = 0; i < f.size(); ++i) b[i] = f[i] != 0.f;
  return m;
}

inline std::int64_t float_nonzeros(const graph& g) {
  std::int64_t n = 0;
  for (const value* v : g.initializers()) {
    const tensor& t = *v->initializer();
    if (t.dtype() != dtype::float32 && t.dtype() != dtype::float16 && t.dtype() != dtype::bfloat16) continue;
    const std::vector<float> f = sparsity::float_values(t);
    n += static_cast<std::int64_t>(f.size()) - static_cast<std::int64_t>(std::count(f.begin(), f.end(), 0.f));
  }
  return n;
}

inline std::int64_t parameter_count(const graph& g) {
  std::int64_t n = 0;
  for (const value* v : g.initializers()) n += static_cast<std::int64_t>(v->initializer()->size());
  return n;
}

/// Zeroes channel `c` of a tensor along `axis`.
inline void zero_channel(tensor& t, std::size_t axis, std::size_t c) {
  const std::size_t outer = t.shape().outer(axis), n = static_cast<std::size_t>(t.shape()[axis]), inner = t.shape().inner(axis);
  const std::size_t width = storage_bytes(t.dtype(), 1);
  std::byte* b = t.bytes();
  for (std::size_t o = 0; o < outer; ++o) std::memset(b + ((o * n + c) * inner) * width, 0, inner * width);
}

/// The parameters that must be zero for a silenced channel to be zero downstream (see
/// channel_group_builder::check_zero_preserving): biases, normalisation scale and shift,
/// depthwise filters, and per-channel terms of Add / Sub. Means, variances and divisors stay.
inline bool silenced_with_channel(const channel_tensor& p) {
  if (p.role == "mean" || p.role == "var") return false;
  if (p.role == "operand") return p.user->is("Add") || p.user->is("Sub");
  return true;
}

inline prune_report prune_channels(model& m, const prune_options& opt, const std::vector<weight_site>& sites) {
  graph& g = m.main_graph();
  prune_report report;
  std::unordered_map<const node*, const weight_site*> site_of;
  for (const auto& s : sites) site_of.emplace(s.n, &s);
  std::set<const value*> sources;
  std::vector<std::pair<channel_group, std::vector<std::int64_t>>> decided;
  for (channel_group& grp : find_channel_groups(g)) {
    pruned_group r;
    r.sources = node_names(grp.sources);
    r.sinks = node_names(grp.sinks);
    r.channels_before = r.channels_after = grp.channels;
    for (const auto& s : grp.sources) {
      auto it = site_of.find(s.n);
      if (it == site_of.end()) r.reason = s.n->context() + " is not pruned (op type not selected)";
      else if (it->second->why_not == "excluded") r.reason = s.n->context() + " is excluded";
      else if (s.weight.c.data->dtype() != dtype::float32 && s.weight.c.data->dtype() != dtype::float16 &&
               s.weight.c.data->dtype() != dtype::bfloat16)
        r.reason = s.n->context() + " weight is not float";
      if (!r.reason.empty()) break;
    }
    if (r.reason.empty() && !grp.usable()) r.reason = grp.failure;
    if (r.reason.empty() && grp.sinks.empty()) r.reason = "no consumer reads the channels";
    if (r.reason.empty() && !grp.not_zero_preserving.empty()) r.reason = grp.not_zero_preserving;
    for (const auto& s : grp.sources) sources.insert(s.weight.c.v);
    if (!r.reason.empty()) {
      for (const auto& s : grp.sources) report.skipped.push_back({s.weight.c.v->name(), s.n->name(), r.reason});
      report.groups.push_back(std::move(r));
      continue;
    }
    // Importance of a channel: the sum of its filters' Ln norms over the group's sources.
    const auto c = static_cast<std::size_t>(grp.channels);
    std::vector<double> importance(c, 0.0);
    std::vector<std::uint8_t> live(c, 0);
    for (const auto& s : grp.sources) {
      const tensor& w = *s.weight.c.data;
      const std::vector<float> f = sparsity::float_values(w);
      const std::size_t axis = s.weight.axis;
      const auto norms = quench::prune::channel_norms(f.data(), nullptr, w.shape().outer(axis), c, w.shape().inner(axis), opt.norm);
      for (std::size_t k = 0; k < c; ++k) {
        importance[k] += norms[k];
        if (norms[k] != 0 || opt.norm == -std::numeric_limits<double>::infinity()) live[k] = 1;
      }
    }
    if (!opt.respect_zeros) std::fill(live.begin(), live.end(), 1);
    std::int64_t alive = std::count(live.begin(), live.end(), 1);
    const std::int64_t k = quench::prune::units_to_prune(opt.amount, alive, "channel group of " + grp.sources.front().n->context());
    std::int64_t prune_count = std::min<std::int64_t>(k, std::max<std::int64_t>(alive - 1, 0));
    if (k >= alive) r.reason = "kept one channel: removing all " + std::to_string(alive) + " would disconnect the graph";
    if (opt.channel_multiple > 1) {
      // Round the channels left up to the multiple (channels already all zero go in any case).
      const std::int64_t m2 = opt.channel_multiple;
      const std::int64_t left = std::min<std::int64_t>((alive - prune_count + m2 - 1) / m2 * m2, alive);
      const std::int64_t rounded = alive - left;
      if (rounded != prune_count) r.reason = "kept " + std::to_string(left) + " channels, a multiple of " + std::to_string(m2);
      prune_count = rounded;
    }
    const quench::prune::prune_amount clamped = quench::prune::prune_amount::count(prune_count);
    // Channels already zero in every source (respect_zeros) are removed along with the chosen ones.
    const std::vector<std::uint8_t> keep = quench::prune::prune_channels(importance, live, clamped);
    std::vector<std::int64_t> kept;
    for (std::size_t ch = 0; ch < c; ++ch)
      if (keep[ch]) kept.push_back(static_cast<std::int64_t>(ch));
    if (kept.empty()) kept.push_back(0);
    if (kept.size() == c) {
      if (r.reason.empty()) r.reason = "nothing to prune";
      report.groups.push_back(std::move(r));
      continue;
    }
    // Every group decides on the weights as they came: removing one group's channels shrinks the
    // input axis of another group's sources, which must not change that group's ranking.
    r.channels_after = opt.removal == channel_removal::remove ? static_cast<std::int64_t>(kept.size()) : grp.channels;
    r.applied = true;
    decided.push_back({std::move(grp), std::move(kept)});
    report.groups.push_back(std::move(r));
  }
  for (auto& [grp, kept] : decided) {
    if (opt.removal == channel_removal::remove) {
      apply_channel_index(grp, kept);
      continue;
    }
    std::vector<std::uint8_t> keep(static_cast<std::size_t>(grp.channels), 0);
    for (auto k : kept) keep[static_cast<std::size_t>(k)] = 1;
    for (std::size_t ch = 0; ch < keep.size(); ++ch) {
      if (keep[ch]) continue;
      for (auto& s : grp.sources) zero_channel(*s.weight.c.data, s.weight.axis, ch);
      for (auto& p : grp.params)
        if (silenced_with_channel(p)) zero_channel(*p.c.data, p.axis, ch);
    }
  }
  for (const auto& s : sites)
    if (!sources.count(s.v))
      report.skipped.push_back({s.v->name(), s.n->name(), s.why_not.empty() ? "its output channels start no channel group (grouped or depthwise)" : s.why_not});
  return report;
}

}  // namespace detail

/// Prunes the weights of `m` as `opt` says (see the header comment) and reports what changed.
/// Throws invalid_argument for contradictory options.
inline prune_report prune(model& m, const prune_options& opt = {}) {
  if (opt.global && opt.structured)
    throw_error(errc::invalid_argument, "prune", "global pruning is unstructured (as torch's global_unstructured); drop --global or --structured");
  if (opt.removal != channel_removal::none && !(opt.structured && opt.dim == 0))
    throw_error(errc::invalid_argument, "prune", "removing channels needs structured pruning of output channels (dim 0)");
  if (opt.random && (opt.structured || opt.global))
    throw_error(errc::invalid_argument, "prune", "random pruning is per-weight unstructured");
  if (opt.structured) quench::prune::check_norm(opt.norm, "prune");
  graph& g = m.main_graph();
  const std::int64_t params_before = detail::parameter_count(g), nonzero_before = detail::float_nonzeros(g);
  const std::size_t bytes_before = detail::initializer_bytes(g);
  // Eligibility here is only "a float weight of a selected matrix operator": no N:M size rules.
  const auto sites = detail::matrix_weights(g, opt.op_types, opt.exclude, nullptr, {});
  std::map<const value*, shape> dims_before;
  std::map<const value*, std::int64_t> zeros_before;
  for (const auto& s : sites)
    if (auto c = detail::constant_behind(s.v)) {
      dims_before.emplace(s.v, c->data->shape());
      zeros_before.emplace(s.v, detail::count_zeros(*c->data));
    }

  prune_report report;
  if (opt.removal != channel_removal::none) {
    report = detail::prune_channels(m, opt, sites);
  } else if (opt.global) {
    std::vector<const tensor*> ws, prev;
    std::vector<tensor> masks_before;
    std::vector<const detail::weight_site*> used;
    for (const auto& s : sites) {
      if (!s.why_not.empty()) {
        report.skipped.push_back({s.v->name(), s.n->name(), s.why_not});
        continue;
      }
      used.push_back(&s);
      ws.push_back(detail::constant_behind(s.v)->data);
      if (opt.respect_zeros) masks_before.push_back(detail::nonzero_mask(*ws.back()));
    }
    for (const auto& mb : masks_before) prev.push_back(&mb);
    const auto masks = quench::prune::global_unstructured(ws, opt.amount, prev);
    for (std::size_t i = 0; i < used.size(); ++i) sparsity::apply_mask(*detail::constant_behind(used[i]->v)->data, masks[i]);
  } else {
    std::uint64_t index = 0;
    for (const auto& s : sites) {
      if (!s.why_not.empty()) {
        report.skipped.push_back({s.v->name(), s.n->name(), s.why_not});
        continue;
      }
      tensor& w = *detail::constant_behind(s.v)->data;
      const tensor prev = detail::nonzero_mask(w);
      const tensor* p = opt.respect_zeros ? &prev : nullptr;
      tensor mask;
      if (opt.structured) {
        const std::size_t axis = detail::torch_dim_axis(s, opt.dim);
        if (axis >= w.rank()) {
          report.skipped.push_back({s.v->name(), s.n->name(), "has no dim " + std::to_string(opt.dim)});
          continue;
        }
        mask = quench::prune::ln_structured(w, opt.amount, opt.norm, static_cast<std::int64_t>(axis), p);
      } else if (opt.random) {
        mask = quench::prune::random_unstructured(w, opt.amount, opt.seed + 0x9e3779b97f4a7c15ULL * index++, p);
      } else {
        mask = quench::prune::l1_unstructured(w, opt.amount, p);
      }
      sparsity::apply_mask(w, mask);
    }
  }
  for (const auto& s : sites) {
    auto c = detail::constant_behind(s.v);
    if (!c) continue;
    pruned_weight r;
    r.name = s.v->name();
    r.node = s.n->name();
    r.op_type = s.n->op_type();
    r.dims_before = dims_before.at(s.v);
    r.dims_after = c->data->shape();
    r.elements = static_cast<std::int64_t>(c->data->size());
    r.zeros = detail::count_zeros(*c->data);
    if (r.dims_before != r.dims_after || r.zeros != zeros_before.at(s.v)) report.weights.push_back(std::move(r));
  }
  report.parameters_before = params_before;
  report.nonzero_before = nonzero_before;
  report.bytes_before = bytes_before;
  report.parameters_after = detail::parameter_count(g);
  report.nonzero_after = detail::float_nonzeros(g);
  report.bytes_after = detail::initializer_bytes(g);
  return report;
}

}  // namespace quench::pipeline
