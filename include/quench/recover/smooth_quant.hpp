#pragma once
// smooth_quant: SmoothQuant (Xiao et al. 2022) on the graph. Transformers put a few activation
// channels far above the rest (LayerNorm weights do it), so a per-tensor activation scale wastes
// almost all levels on them. For a MatMul/Gemm with a constant weight W [K, N] reading activation
// X [..., K], channel j is moved from X to W by
//
//     s_j = max|X_j|^alpha / max|W_j|^(1 - alpha),   X_j / s_j,   W[j, :] * s_j
//
// which leaves X W unchanged. The division goes into the op that produced X when it is a
// per-channel affine op (LayerNormalization's scale and bias, a Mul by a constant, the Add of a
// decomposed LayerNorm after its Mul), else into an inserted Mul. Every consumer of X must be such
// a MatMul/Gemm (they share s; max|W_j| is taken over all of them), else X is left alone.
//
//     auto stats = quench::recover::activation_channel_absmax(model, data,
//     recover::smooth_quant_targets(model)); auto r = quench::recover::smooth_quant(model, stats, {0.5});

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/graph/model.hpp"
#include "quench/recover/observe_samples.hpp"
#include "quench/runtime/executor.hpp"

namespace quench::recover {

struct smooth_quant_options {
  double alpha = 0.5;  ///< migration strength: 0 keeps the activations, 1 moves everything to the weights
  /// Only activations with outlier channels: max over channels of max|X_j| at least this many times
  /// its median (an even tensor gains nothing, and an inserted Mul costs time).
  double min_outlier_ratio = 8;
  std::int64_t samples = 64;
  std::int64_t batch_size = 8;
  runtime::executor_options executor;
  /// Per-activation alpha (choose_alphas' result); tensors not in it take `alpha`.
  std::map<std::string, double> alphas;
};

/// The per-layer search over alpha (choose_alphas): each candidate is scored by the error of the
/// consumers' outputs when X / s and W s are quantized as the deployment will quantize them.
struct alpha_search_options {
  std::vector<double> grid{0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
  std::int64_t rows = 512;          ///< activation rows (tokens) kept per tensor for the score
  bool per_channel_weights = true;  ///< weights quantized per output column (else per tensor)
  bool symmetric_activations = false;  ///< int8 symmetric (TensorRT) instead of uint8 asymmetric
};

/// One tensor's search: the error of each alpha, relative to the consumers' output energy.
struct alpha_choice {
  std::string tensor;
  double alpha = 0.5;
  std::vector<std::pair<double, double>> relative_error;  ///< (alpha, ||Y_q - Y||^2 / ||Y||^2)
};

struct smoothed_activation {
  std::string tensor;
  std::vector<std::string> consumers;
  std::string folded_into;  ///< the producer that absorbed 1/s, or "Mul" when one was inserted
  double spread_before = 0, spread_after = 0;  ///< max/min of the channels' absmax
};

struct smooth_quant_report {
  std::vector<smoothed_activation> activations;
  std::vector<alpha_choice> search;  ///< the per-layer alpha search, when it ran
};

namespace detail {

struct linear_consumer {
  node* n;
  tensor* w;
  std::int64_t k_axis;  ///< axis of W indexed by the activation's channel j
};

inline bool private_weight(const value* v) {
  return v && v->is_initializer() && !v->is_graph_input() && v->initializer()->dtype() == dtype::float32 &&
         v->initializer()->rank() == 2;
}

/// X's consumers when all are MatMul/Gemm reading X as input 0 with a constant 2-D weight only they read.
inline bool linear_consumers(value& x, std::vector<linear_consumer>& out) {
  out.clear();
  if (x.uses().empty() || x.is_graph_output()) return false;
  for (const use& u : x.uses()) {
    node* n = u.user;
    if (u.index != 0 || !(n->is("MatMul") || n->is("Gemm"))) return false;
    value* w = n->input(1);
    if (!private_weight(w)) return false;
    for (const use& wu : w->uses())
      if (wu.user != n) return false;
    std::int64_t axis = 0;
    if (n->is("Gemm")) {
      if (n->attr_int("transA", 0) != 0) return false;
      axis = n->attr_int("transB", 0) ? 1 : 0;
    }
    out.push_back({n, w->initializer(), axis});
  }
  const std::int64_t k = out[0].w->shape()[out[0].k_axis];
  for (const auto& c : out)
    if (c.w->shape()[c.k_axis] != k) return false;
  return true;
}

inline tensor* private_const_vector(value* v, std::int64_t k) {
  if (!v || !v->is_initializer() || v->is_graph_input() || v->uses().size() != 1) return nullptr;
  tensor* t = v->initializer();
  if (t->dtype() != dtype::float32 || t->rank() != 1 || t->shape()[0] != k) return nullptr;
  return t;
}

/// max |W_j| over all consumers, per activation channel j.
inline std::vector<double> weight_channel_absmax(const std::vector<linear_consumer>& lc, std::int64_t k) {
  std::vector<double> wmax(static_cast<std::size_t>(k), 0.0);
  for (const auto& c : lc) {
    const float* w = c.w->view<float>().data();
    const std::int64_t rows = c.w->shape()[0], cols = c.w->shape()[1];
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t q = 0; q < cols; ++q) {
        const std::size_t j = static_cast<std::size_t>(c.k_axis == 0 ? r : q);
        wmax[j] = std::max(wmax[j], static_cast<double>(std::fabs(w[r * cols + q])));
      }
  }
  return wmax;
}

inline std::vector<double> smoothing_scales(const std::vector<double>& xmax, const std::vector<double>& wmax, double alpha) {
  std::vector<double> s(xmax.size(), 1.0);
  for (std::size_t j = 0; j < s.size(); ++j)
    if (xmax[j] > 0 && wmax[j] > 0) s[j] = std::clamp(std::pow(xmax[j], alpha) / std::pow(wmax[j], 1 - alpha), 1e-5, 1e5);
  return s;
}

/// Round to nearest even on the grid of step `scale` with zero point `zp`, clamped to [lo, hi].
inline double fake_quant(double v, double scale, double zp, double lo, double hi) {
  return (std::clamp(std::nearbyint(v / scale) + zp, lo, hi) - zp) * scale;
}

/// ||Q(X / s) Q(W s) - X W||^2 / ||X W||^2 over the kept rows of X ([rows, k]) for every consumer.
inline double smoothed_output_error(const std::vector<float>& x, std::int64_t k, const std::vector<linear_consumer>& lc,
                                    const std::vector<double>& s, const alpha_search_options& so) {
  const std::size_t rows = x.size() / static_cast<std::size_t>(k), K = static_cast<std::size_t>(k);
  // The activation as the deployment quantizes it: one scale over the tensor.
  std::vector<double> xs(x.size());
  double lo = 0, hi = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    xs[i] = x[i] / s[i % K];
    lo = std::min(lo, xs[i]);
    hi = std::max(hi, xs[i]);
  }
  double scale, zp, qlo, qhi;
  if (so.symmetric_activations) {
    scale = std::max(-lo, hi) / 127.0, zp = 0, qlo = -128, qhi = 127;
  } else {
    scale = (hi - lo) / 255.0, zp = std::nearbyint(-lo / (scale > 0 ? scale : 1)), qlo = 0, qhi = 255;
  }
  if (scale > 0)
    for (double& v : xs) v = fake_quant(v, scale, zp, qlo, qhi);
  double err = 0, energy = 0;
  for (const auto& c : lc) {
    const float* w = c.w->view<float>().data();
    const std::size_t n = static_cast<std::size_t>(c.w->shape()[c.k_axis == 0 ? 1 : 0]);
    auto W = [&](std::size_t j, std::size_t q) { return static_cast<double>(c.k_axis == 0 ? w[j * n + q] : w[q * K + j]); };
    // W s quantized int8 symmetric per output column (or per tensor).
    std::vector<double> wq(K * n);
    std::vector<double> colmax(n, 0.0);
    double all = 0;
    for (std::size_t j = 0; j < K; ++j)
      for (std::size_t q = 0; q < n; ++q) {
        const double v = W(j, q) * s[j];
        wq[j * n + q] = v;
        colmax[q] = std::max(colmax[q], std::fabs(v));
        all = std::max(all, std::fabs(v));
      }
    for (std::size_t j = 0; j < K; ++j)
      for (std::size_t q = 0; q < n; ++q) {
        const double m = so.per_channel_weights ? colmax[q] : all;
        if (m > 0) wq[j * n + q] = fake_quant(wq[j * n + q], m / 127.0, 0, -127, 127);
      }
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t q = 0; q < n; ++q) {
        double y = 0, yq = 0;
        for (std::size_t j = 0; j < K; ++j) {
          y += static_cast<double>(x[r * K + j]) * W(j, q);
          yq += xs[r * K + j] * wq[j * n + q];
        }
        err += (yq - y) * (yq - y);
        energy += y * y;
      }
  }
  return energy > 0 ? err / energy : err;
}

}  // namespace detail

/// Chooses alpha per activation of `names` (smooth_quant_targets) from `grid` by the quantized
/// output error of its consumers on the first activation rows of the data; the result goes into
/// smooth_quant_options::alphas. Tensors without outlier channels are not searched.
inline std::vector<alpha_choice> choose_alphas(model& m, data::sample_source& source, const std::vector<std::string>& names,
                                               const smooth_quant_options& o = {}, const alpha_search_options& so = {}) {
  if (so.grid.empty()) throw_error(errc::invalid_argument, "SmoothQuant alpha search", "needs at least one alpha");
  for (double a : so.grid)
    if (!(a >= 0 && a <= 1)) throw_error(errc::invalid_argument, "SmoothQuant alpha search", "alphas must be in [0, 1]");
  std::map<std::string, std::vector<double>> absmax;
  std::map<std::string, std::vector<float>> rows;
  std::map<std::string, std::int64_t> width;
  for (const auto& n : names) absmax[n], rows[n];
  observe_samples(m, source, o.samples, o.batch_size, o.executor, [&](const std::string& name, const tensor& t) {
    auto it = absmax.find(name);
    if (it == absmax.end() || t.dtype() != dtype::float32 || t.rank() < 1) return;
    const std::int64_t k = t.shape()[t.rank() - 1];
    auto& a = it->second;
    if (a.empty()) {
      a.assign(static_cast<std::size_t>(k), 0.0);
      width[name] = k;
    }
    if (width[name] != k || k == 0) return;
    const float* x = t.view<float>().data();
    for (std::size_t i = 0; i < t.size(); ++i)
      if (std::fabs(x[i]) > a[i % a.size()]) a[i % a.size()] = std::fabs(x[i]);
    auto& r = rows[name];
    const std::size_t want = static_cast<std::size_t>(so.rows * k);
    const std::size_t take = std::min(want - std::min(want, r.size()), t.size());
    r.insert(r.end(), x, x + take);
  });
  graph& g = m.main_graph();  // not changed: linear_consumers hands out mutable weights
  std::vector<alpha_choice> out;
  std::vector<detail::linear_consumer> lc;
  for (const auto& name : names) {
    value* x = g.find_value(name);
    const auto& xmax = absmax[name];
    const auto& xr = rows[name];
    if (!x || xmax.empty() || xr.empty() || !detail::linear_consumers(*x, lc)) continue;
    const std::int64_t k = static_cast<std::int64_t>(xmax.size());
    if (lc[0].w->shape()[lc[0].k_axis] != k) continue;
    std::vector<double> sorted = xmax;
    std::sort(sorted.begin(), sorted.end());
    if (!(sorted.back() >= o.min_outlier_ratio * sorted[sorted.size() / 2]) || sorted[sorted.size() / 2] <= 0) continue;
    const std::vector<double> wmax = detail::weight_channel_absmax(lc, k);
    alpha_choice c;
    c.tensor = name;
    double best = HUGE_VAL;
    for (double a : so.grid) {
      const double e = detail::smoothed_output_error(xr, k, lc, detail::smoothing_scales(xmax, wmax, a), so);
      c.relative_error.emplace_back(a, e);
      if (e < best) best = e, c.alpha = a;
    }
    out.push_back(std::move(c));
  }
  return out;
}

/// The activations smooth_quant can act on (their consumers are all eligible MatMul/Gemm).
inline std::vector<std::string> smooth_quant_targets(model& m) {
  std::vector<std::string> out;
  std::vector<detail::linear_consumer> lc;
  for (node* n : m.main_graph().nodes())
    for (value* v : n->outputs())
      if (v && detail::linear_consumers(*v, lc)) out.push_back(v->name());
  return out;
}

/// max |x| per channel of the last axis, for each tensor of `names`, over samples spread over `source`.
inline std::map<std::string, std::vector<double>> activation_channel_absmax(
    const model& m, data::sample_source& source, const std::vector<std::string>& names,
    const smooth_quant_options& o = {}) {
  std::map<std::string, std::vector<double>> acc;
  for (const auto& n : names) acc[n];
  observe_samples(m, source, o.samples, o.batch_size, o.executor,
                  [&](const std::string& name, const tensor& t) {
                    auto it = acc.find(name);
                    if (it == acc.end() || t.dtype() != dtype::float32 || t.rank() < 1) return;
                    const std::size_t k = static_cast<std::size_t>(t.shape()[t.rank() - 1]);
                    auto& a = it->second;
                    if (a.empty()) a.assign(k, 0.0);
                    if (a.size() != k) return;
                    const float* x = t.view<float>().data();
                    for (std::size_t i = 0; i < t.size(); ++i) {
                      const float v = std::fabs(x[i]);
                      if (v > a[i % k]) a[i % k] = v;  // NaN compares false: ignored
                    }
                  });
  return acc;
}

/// Applies SmoothQuant to every tensor of `absmax` (from activation_channel_absmax).
inline smooth_quant_report smooth_quant(model& m, const std::map<std::string, std::vector<double>>& absmax,
                                        const smooth_quant_options& o = {}) {
  if (!(o.alpha >= 0 && o.alpha <= 1))
    throw_error(errc::invalid_argument, "SmoothQuant", "alpha must be in [0, 1]");
  graph& g = m.main_graph();
  smooth_quant_report report;
  std::vector<detail::linear_consumer> lc;
  for (const auto& [name, xmax] : absmax) {
    value* x = g.find_value(name);
    if (!x || xmax.empty() || !detail::linear_consumers(*x, lc)) continue;
    const std::int64_t k = static_cast<std::int64_t>(xmax.size());
    if (lc[0].w->shape()[lc[0].k_axis] != k) continue;
    {
      std::vector<double> sorted = xmax;
      std::sort(sorted.begin(), sorted.end());
      const double median = sorted[sorted.size() / 2];
      if (!(sorted.back() >= o.min_outlier_ratio * median) || median <= 0) continue;
    }
    const std::vector<double> wmax = detail::weight_channel_absmax(lc, k);
    const auto a = o.alphas.find(name);
    const std::vector<double> s = detail::smoothing_scales(xmax, wmax, a != o.alphas.end() ? a->second : o.alpha);
    smoothed_activation rec;
    rec.tensor = name;
    auto spread = [](const std::vector<double>& v) {
      double lo = HUGE_VAL, hi = 0;
      for (double a : v)
        if (a > 0) lo = std::min(lo, a), hi = std::max(hi, a);
      return hi > 0 ? hi / lo : 1.0;
    };
    rec.spread_before = spread(xmax);
    std::vector<double> after(xmax.size());
    for (std::size_t j = 0; j < after.size(); ++j) after[j] = xmax[j] / s[j];
    rec.spread_after = spread(after);
    // Weights take s.
    for (const auto& c : lc) {
      float* w = c.w->view<float>().data();
      const std::int64_t rows = c.w->shape()[0], cols = c.w->shape()[1];
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t q = 0; q < cols; ++q) {
          const std::size_t j = static_cast<std::size_t>(c.k_axis == 0 ? r : q);
          w[r * cols + q] = static_cast<float>(w[r * cols + q] * s[j]);
        }
      rec.consumers.push_back(c.n->name());
    }
    // The activation takes 1 / s: in its producer when that is a per-channel affine op.
    auto divide = [&](tensor& t) {
      float* v = t.view<float>().data();
      for (std::size_t j = 0; j < s.size(); ++j) v[j] = static_cast<float>(v[j] / s[j]);
    };
    node* p = x->producer();
    bool folded = false;
    if (p && p->is("LayerNormalization") && p->attr_int("axis", -1) == -1) {
      tensor* scale = detail::private_const_vector(p->input(1), k);
      tensor* bias = p->input(2) ? detail::private_const_vector(p->input(2), k) : nullptr;
      if (scale && (bias || !p->input(2))) {
        divide(*scale);
        if (bias) divide(*bias);
        folded = true;
        rec.folded_into = p->name();
      }
    } else if (p && p->is("Mul")) {
      for (int i = 0; i < 2 && !folded; ++i)
        if (tensor* c = detail::private_const_vector(p->input(static_cast<std::size_t>(i)), k)) {
          divide(*c);
          folded = true;
          rec.folded_into = p->name();
        }
    } else if (p && p->is("Add")) {
      // Decomposed LayerNorm: Add(Mul(n, gamma), beta).
      for (int i = 0; i < 2 && !folded; ++i) {
        tensor* beta = detail::private_const_vector(p->input(static_cast<std::size_t>(i)), k);
        value* other = p->input(static_cast<std::size_t>(1 - i));
        node* mul = other ? other->producer() : nullptr;
        if (!beta || !mul || !mul->is("Mul") || other->uses().size() != 1) continue;
        for (int jx = 0; jx < 2 && !folded; ++jx)
          if (tensor* gamma = detail::private_const_vector(mul->input(static_cast<std::size_t>(jx)), k)) {
            divide(*gamma);
            divide(*beta);
            folded = true;
            rec.folded_into = p->name();
          }
      }
    }
    if (!folded) {
      tensor inv(dtype::float32, {k}, g.unique_name(name + "_smooth_scale"));
      for (std::size_t j = 0; j < s.size(); ++j) inv.view<float>()[j] = static_cast<float>(1.0 / s[j]);
      value& sv = g.add_initializer(std::move(inv));
      node& mul = g.add_node("Mul", {x, &sv}, {g.unique_name(name + "_smoothed")},
                             g.unique_name(name + "_SmoothQuant"));
      for (const auto& c : lc) g.set_input(*c.n, 0, mul.output(0));
      rec.folded_into = "Mul";
      g.topological_sort();
    }
    report.activations.push_back(rec);
  }
  return report;
}

}  // namespace quench::recover
