#pragma once
// sparsify: N:M structured sparsity on an ONNX model. Every eligible Conv / ConvTranspose / Gemm /
// MatMul weight gets ASP's mask (quench/sparsity/nm_mask.hpp) along its input-channel axis
// (quench/sparsity/eligibility.hpp) and the pruned weights are written as zeros: the model stays
// dense, so every runtime loads it, and TensorRT (--sparsity=enable) or cuSPARSELt find the 2:4
// pattern in it. Weights that cannot take the pattern are listed with the reason.
//
// With `permute`, the input channels of each channel group (pipeline/detail/prune_channel_groups.hpp:
// a sink layer, its producers and the channel-wise operators in between) are first reordered by
// the channel permutation search (quench/sparsity/permutation.hpp) on the stacked weights of the
// group's eligible sinks; the producers' output channels, biases and normalisation parameters
// follow, so the permuted model computes the same function (tests compare in ONNX Runtime).
// As in ASP, a group is left alone when its masks already keep all but 0.1 % of the magnitude.
//
//     quench::model m = quench::onnx::load_model("resnet.onnx");
//     quench::pipeline::sparsify_options o;
//     o.permute = true;
//     auto report = quench::pipeline::sparsify(m, o);   // report.tensors, report.skipped
//     quench::onnx::save_model(m, "resnet.sparse.onnx");

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/model.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/pipeline/detail/prune_channel_groups.hpp"
#include "quench/sparsity/compress.hpp"
#include "quench/sparsity/eligibility.hpp"
#include "quench/sparsity/nm_mask.hpp"
#include "quench/sparsity/permutation.hpp"

namespace quench::pipeline {

struct sparsify_options {
  sparsity::nm_pattern pattern;         ///< 2:4
  sparsity::eligibility_rules rules;    ///< ASP's out % 8, in % 16; {0, 0} for "any size divisible by M"
  std::set<std::string> op_types{"Conv", "ConvTranspose", "Gemm", "MatMul"};
  std::set<std::string> exclude;        ///< node names or weight names left dense
  bool permute = false;                 ///< channel permutation search before masking
  sparsity::permutation_options permutation;
  simd_target target = best_simd_target();
};

/// One weight that now holds the N:M pattern.
struct sparse_weight {
  std::string name, node, op_type;
  shape dims;
  std::size_t axis = 0;             ///< the grouped (input-channel) axis
  std::int64_t elements = 0, zeros = 0;
  double magnitude_total = 0, magnitude_kept = 0;
  double magnitude_kept_unpermuted = 0;  ///< what the mask would keep without the permutation
  bool permuted = false;
  double sparsity() const noexcept { return elements ? static_cast<double>(zeros) / static_cast<double>(elements) : 0.0; }
};

/// A weight left as it was, and why.
struct skipped_weight {
  std::string name, node, reason;
};

/// One channel group considered for permutation.
struct permuted_group {
  std::vector<std::string> sources, sinks;  ///< node names
  std::int64_t channels = 0;
  bool applied = false;
  std::string reason;  ///< why not applied
  double magnitude_before = 0, magnitude_after = 0, seconds = 0;
  std::int64_t swaps = 0;
};

struct sparsify_report {
  sparsity::nm_pattern pattern;
  std::vector<sparse_weight> tensors;
  std::vector<skipped_weight> skipped;
  std::vector<permuted_group> permutations;
  std::int64_t parameters = 0;           ///< float weights of the matrix operators
  std::int64_t zeros_before = 0, zeros_after = 0;
  std::size_t bytes = 0;                 ///< initializer bytes (unchanged: the layout stays dense)
  std::size_t compressed_bytes = 0;      ///< the same with the sparse weights stored as 2:4 values + metadata

  double sparsity() const noexcept { return parameters ? static_cast<double>(zeros_after) / static_cast<double>(parameters) : 0.0; }
};

namespace detail {

/// A matrix-operator weight and how its consumer reads it.
struct weight_site {
  node* n = nullptr;
  value* v = nullptr;
  sparsity::weight_op op = sparsity::weight_op::conv;
  sparsity::weight_axes axes;
  std::int64_t group = 1;
  std::string why_not;  ///< "" when it can be masked
};

inline std::size_t initializer_bytes(const graph& g) {
  std::size_t b = 0;
  for (const value* v : g.initializers()) b += v->initializer()->nbytes();
  return b;
}

inline std::int64_t count_zeros(const tensor& t) {
  const std::vector<float> f = sparsity::float_values(t);
  return static_cast<std::int64_t>(std::count(f.begin(), f.end(), 0.f));
}

/// The weights of the matrix operators of `g` in graph order, with the reason each cannot take
/// an N:M mask ("" = it can; without `pattern`, only "a float constant" is asked). One entry per
/// weight value.
inline std::vector<weight_site> matrix_weights(graph& g, const std::set<std::string>& op_types, const std::set<std::string>& exclude,
                                               const sparsity::nm_pattern* pattern, const sparsity::eligibility_rules& rules) {
  std::vector<weight_site> sites;
  std::unordered_map<value*, std::size_t> seen;
  for (node* n : g.nodes()) {
    if (!channel_ops::is_matrix_op(*n) || !op_types.count(n->op_type())) continue;
    value* w = n->input(1);
    if (!w) continue;
    weight_site s;
    s.n = n;
    s.v = w;
    s.op = sparsity::weight_op_from_name(n->op_type());
    s.group = n->attr_int("group", 1);
    auto c = constant_behind(w);
    if (exclude.count(n->name()) || exclude.count(w->name())) s.why_not = "excluded";
    else if (!c) s.why_not = "weight is computed by " + (w->producer() ? w->producer()->context() : std::string("the caller")) + ", not a constant";
    else if (!c->constant_node && !w->is_initializer()) s.why_not = "weight is not an initializer";
    else if (c->data->dtype() != dtype::float32 && c->data->dtype() != dtype::float16 && c->data->dtype() != dtype::bfloat16)
      s.why_not = "weight is " + to_string(c->data->dtype()) + ", not float";
    else if (n->is("MatMul") && c->data->rank() != 2) s.why_not = "batched MatMul weight of rank " + std::to_string(c->data->rank());
    else if (n->is("Gemm") && c->data->rank() != 2) s.why_not = "Gemm weight of rank " + std::to_string(c->data->rank());
    else if ((n->is("Conv") || n->is("ConvTranspose")) && c->data->rank() < 3) s.why_not = "convolution weight of rank " + std::to_string(c->data->rank());
    if (s.why_not.empty()) {
      s.axes = sparsity::weight_axes_of(s.op, c->data->shape(), n->attr_int("transB", 0) != 0, n->context());
      if (pattern) s.why_not = sparsity::ineligibility(s.axes, *pattern, rules, s.group, s.op);
    }
    if (s.why_not.empty())
      for (const use& u : w->uses())
        if (!(channel_ops::is_matrix_op(*u.user) && u.index == 1)) s.why_not = "also read by " + u.user->context();
    auto it = seen.find(w);
    if (it != seen.end()) {
      // A weight shared by several nodes: one mask, if they all read it the same way.
      weight_site& first = sites[it->second];
      if (first.why_not.empty() && (!s.why_not.empty() || s.axes.in_axis != first.axes.in_axis))
        first.why_not = s.why_not.empty() ? "shared with " + n->context() + ", which reads another axis" : s.why_not;
      continue;
    }
    seen.emplace(w, sites.size());
    sites.push_back(std::move(s));
  }
  return sites;
}

/// The ASP view of a sink weight for the permutation search: [rows][C] with C its input channels.
inline std::vector<float> asp_rows(const tensor& w, std::size_t in_axis, std::size_t& rows) {
  const std::vector<float> f = sparsity::float_values(w);
  const std::size_t outer = w.shape().outer(in_axis), c = static_cast<std::size_t>(w.shape()[in_axis]), inner = w.shape().inner(in_axis);
  rows = outer * inner;
  std::vector<float> m(rows * c);
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t ch = 0; ch < c; ++ch)
      for (std::size_t i = 0; i < inner; ++i) m[(o * inner + i) * c + ch] = f[(o * c + ch) * inner + i];
  return m;
}

inline std::vector<std::string> node_names(const std::vector<channel_endpoint>& e) {
  std::vector<std::string> out;
  for (const auto& x : e) out.push_back(x.n->name());
  return out;
}

/// Permutes the input channels of every usable channel group whose sinks include sparsifiable
/// weights; returns a report per group, and adds the sink weights it permuted to `permuted`.
inline std::vector<permuted_group> permute_groups(graph& g, const std::vector<weight_site>& sites, const sparsify_options& opt,
                                                  std::unordered_map<const value*, double>& unpermuted_kept,
                                                  std::set<const value*>& permuted) {
  std::vector<permuted_group> out;
  std::unordered_map<const value*, const weight_site*> eligible;
  for (const auto& s : sites)
    if (s.why_not.empty()) eligible.emplace(s.v, &s);
  for (channel_group& grp : find_channel_groups(g)) {
    permuted_group r;
    r.sources = node_names(grp.sources);
    r.sinks = node_names(grp.sinks);
    r.channels = grp.channels;
    std::vector<const channel_endpoint*> targets;
    for (const auto& s : grp.sinks)
      if (eligible.count(s.weight.c.v)) targets.push_back(&s);
    if (targets.empty()) continue;  // nothing to gain
    if (!grp.usable()) {
      r.reason = grp.failure;
      out.push_back(std::move(r));
      continue;
    }
    std::vector<float> stacked;
    std::size_t rows = 0;
    for (const auto* s : targets) {
      std::size_t k = 0;
      const std::vector<float> m = asp_rows(*s->weight.c.data, s->weight.axis, k);
      stacked.insert(stacked.end(), m.begin(), m.end());
      rows += k;
    }
    const auto c = static_cast<std::size_t>(grp.channels);
    sparsity::permutation_options po = opt.permutation;
    po.pattern = opt.pattern;
    po.target = opt.target;
    const double before = sparsity::retained_nm(stacked.data(), rows, c, opt.pattern);
    double total = 0;
    for (float v : stacked) total += std::fabs(v);
    for (const auto* s : targets) {
      std::size_t k = 0;
      const std::vector<float> m = asp_rows(*s->weight.c.data, s->weight.axis, k);
      unpermuted_kept[s->weight.c.v] = sparsity::retained_nm(m.data(), k, c, opt.pattern);
    }
    r.magnitude_before = r.magnitude_after = before;
    if (total <= 0 || (total - before) / total < 1e-3) {
      r.reason = "the masks already keep all but 0.1 % of the magnitude";
      out.push_back(std::move(r));
      continue;
    }
    const auto res = sparsity::search_permutation(stacked.data(), rows, c, po);
    r.seconds = res.seconds;
    r.swaps = res.swaps;
    r.magnitude_after = res.magnitude_after;
    if (res.is_identity() || res.magnitude_after <= res.magnitude_before) {
      r.reason = "no permutation found that keeps more magnitude";
      out.push_back(std::move(r));
      continue;
    }
    apply_channel_index(grp, res.permutation);
    for (const auto& sink : grp.sinks) permuted.insert(sink.weight.c.v);
    r.applied = true;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace detail

/// Permutes channels only (no masks): what sparsify(permute = true) does first. The model's
/// function is unchanged; the report lists the groups and their retained magnitude.
inline std::vector<permuted_group> permute_channels(model& m, const sparsify_options& opt = {}) {
  sparsity::check_nm_pattern(opt.pattern, "sparsify");
  graph& g = m.main_graph();
  const auto sites = detail::matrix_weights(g, opt.op_types, opt.exclude, &opt.pattern, opt.rules);
  std::unordered_map<const value*, double> unpermuted;
  std::set<const value*> permuted;
  return detail::permute_groups(g, sites, opt, unpermuted, permuted);
}

/// Applies N:M masks to the eligible weights of `m` (see the header comment) and reports them.
inline sparsify_report sparsify(model& m, const sparsify_options& opt = {}) {
  sparsity::check_nm_pattern(opt.pattern, "sparsify");
  graph& g = m.main_graph();
  sparsify_report report;
  report.pattern = opt.pattern;
  auto sites = detail::matrix_weights(g, opt.op_types, opt.exclude, &opt.pattern, opt.rules);
  std::unordered_map<const value*, double> unpermuted;
  std::set<const value*> permuted;
  std::size_t dense_sparse = 0;
  if (opt.permute) report.permutations = detail::permute_groups(g, sites, opt, unpermuted, permuted);
  for (auto& s : sites) {
    auto c = detail::constant_behind(s.v);
    if (!c) continue;
    tensor& w = *c->data;
    report.parameters += static_cast<std::int64_t>(w.size());
    const std::int64_t zeros = detail::count_zeros(w);
    report.zeros_before += zeros;
    if (!s.why_not.empty()) {
      report.skipped.push_back({s.v->name(), s.n->name(), s.why_not});
      report.zeros_after += zeros;
      continue;
    }
    tensor mask = sparsity::nm_mask(w, s.axes.in_axis, opt.pattern, opt.target);
    const auto mag = sparsity::retained_magnitude(w, mask);
    sparsity::apply_mask(w, mask);
    sparse_weight r;
    r.name = s.v->name();
    r.node = s.n->name();
    r.op_type = s.n->op_type();
    r.dims = w.shape();
    r.axis = s.axes.in_axis;
    r.elements = static_cast<std::int64_t>(w.size());
    r.zeros = detail::count_zeros(w);
    r.magnitude_total = mag.total;
    r.magnitude_kept = mag.kept;
    r.permuted = permuted.count(s.v) > 0;
    auto it = unpermuted.find(s.v);
    r.magnitude_kept_unpermuted = r.permuted && it != unpermuted.end() ? it->second : mag.kept;
    report.zeros_after += r.zeros;
    if (opt.pattern.is_2_4()) {
      // As a sparse kernel stores it: half the values, 2 bits of position each.
      dense_sparse += w.nbytes();
      report.compressed_bytes += w.size() / 2 * storage_bytes(w.dtype(), 1) + w.size() / 8;
    }
    report.tensors.push_back(std::move(r));
  }
  report.bytes = detail::initializer_bytes(g);
  report.compressed_bytes = report.bytes - dense_sparse + report.compressed_bytes;
  return report;
}

}  // namespace quench::pipeline
