#pragma once
// bias_correction: empirical bias correction of a QDQ model (DFQ, Nagel et al. 2019; NNCF's fast
// bias correction, AIMET's empirical variant). Quantization shifts the mean of every layer's
// output: E[y~] - E[y] = (W~ - W) E[x] plus what upstream layers shifted. For each quantized
// Conv/ConvTranspose/Gemm, the per-output-channel mean of its output over calibration data is
// measured in the float model and in the QDQ model, and the difference is added to the layer's
// bias (int32 biases are re-quantized with their scale, float biases changed, a missing bias
// added as int32 with scale = input scale x weight scale). Each layer is measured only after every
// layer upstream of it has its correction (Gauss-Seidel, as AIMET's empirical bias correction goes
// layer by layer). Why not all at once: a layer's measured shift includes what upstream layers
// shifted, which their own corrections remove, so correcting every layer from one measurement
// counts upstream shifts twice, and repeating that (Jacobi) diverged on a 17-layer
// MobileNetV2-style chain: the logits' mean gap went 0.035 -> 0.24 -> 1.0 -> 2.6 -> 4.0 over
// passes and the output SQNR 33.4 -> 16.5 dB after two (bench/recover).
// Layer by layer still takes one run of the QDQ model: the samples go through it in lockstep
// (executor::run_lockstep), each layer's output is measured over all of them, its bias corrected,
// and the bias change that the int32 rounding leaves is added to the tensors already computed,
// so downstream layers see what the corrected model computes (up to float rounding).
//     auto want = quench::pipeline::layer_output_means(float_model, calib_data, layer_outputs);
//     ... make the QDQ model (quantize_static does all of this with correct_bias = true) ...
//     auto r = quench::pipeline::correct_biases(qdq_model, want, calib_data);
//     // r.layers: each corrected layer with the largest shift it got
//
// The float means are plain numbers, measured before the float model becomes the QDQ model, so
// no copy of the model is needed.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/data/spread_samples.hpp"
#include "quench/graph/model.hpp"
#include "quench/graph/passes/fold_batch_norm.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/qparams.hpp"
#include "quench/recover/observe_samples.hpp"
#include "quench/runtime/executor.hpp"

namespace quench::pipeline {

struct bias_correction_options {
  std::int64_t samples = 64;     ///< N samples spread evenly over the source
  std::int64_t batch_size = 8;
  /// Runs over the samples, each correcting every layer once; a second only removes what float
  /// rounding left (the first already measures each layer downstream of corrected ones).
  int passes = 1;
  /// A layer without a bias gets an int32 one (ONNX Runtime fuses it) or, off, a float one
  /// (TensorRT's parser rejects int32 DequantizeLinear).
  bool add_int32_bias = true;
  runtime::executor_options executor;
};

struct corrected_layer {
  std::string node;
  double max_shift = 0;  ///< largest |bias change| over the channels, summed over passes
};

struct bias_correction_report {
  std::vector<corrected_layer> layers;
  int passes = 0;  ///< runs of the QDQ model over the samples (0: data-free)
  bool data_free = false;  ///< from BatchNorm statistics (correct_biases_data_free)
};

namespace detail {

/// A layer of the QDQ model whose bias can be corrected, and where its bias lives.
struct correctable {
  node* n = nullptr;
  std::string output;       ///< the layer's output tensor (same name in the float model)
  tensor* int_bias = nullptr;  ///< int32 bias initializer behind a DequantizeLinear
  const tensor* int_scale = nullptr;
  tensor* float_bias = nullptr;
  float input_scale = 0;     ///< for adding a bias: the scales of DQ(x) and DQ(w)
  const tensor* weight_scale = nullptr;
};

inline const tensor* dq_initializer(const value* v, std::size_t input) {
  if (!v || !v->producer() || !v->producer()->is("DequantizeLinear")) return nullptr;
  const value* x = v->producer()->input(input);
  return x && x->is_initializer() ? x->initializer() : nullptr;
}

/// Per-channel sums along axis 1 of `t` into `sum` (sized on first use), and the count per channel.
inline void add_channel_sums(const tensor& t, std::vector<double>& sum, std::int64_t& count) {
  if (t.dtype() != dtype::float32 || t.rank() < 2) return;
  const std::size_t c = static_cast<std::size_t>(t.shape()[1]), outer = static_cast<std::size_t>(t.shape()[0]), inner = t.shape().inner(1);
  if (sum.empty()) sum.assign(c, 0.0);
  if (sum.size() != c) return;
  const float* x = t.view<float>().data();
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t k = 0; k < c; ++k) {
      double s = 0;
      const float* p = x + (o * c + k) * inner;
      for (std::size_t i = 0; i < inner; ++i) s += p[i];
      sum[k] += s;
    }
  count += static_cast<std::int64_t>(outer * inner);
}

/// Output channels of a Conv/ConvTranspose/Gemm from its quantized weight's shape (-1: unknown).
inline std::int64_t output_channels(const node& n) {
  const tensor* w = dq_initializer(n.input(1), 0);
  if (!w || w->rank() < 2) return -1;
  if (n.is("Conv")) return w->shape()[0];
  if (n.is("ConvTranspose")) return w->shape()[1] * n.attr_int("group", 1);
  return n.attr_int("transB", 0) ? w->shape()[0] : w->shape()[1];  // Gemm
}

/// Adds add[k] to channel k (axis 1) of a float tensor.
inline void add_per_channel(tensor& t, const std::vector<float>& add) {
  if (t.dtype() != dtype::float32 || t.rank() < 2 || static_cast<std::size_t>(t.shape()[1]) != add.size()) return;
  const std::size_t c = add.size(), outer = static_cast<std::size_t>(t.shape()[0]), inner = t.shape().inner(1);
  float* x = t.view<float>().data();
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t k = 0; k < c; ++k) {
      float* p = x + (o * c + k) * inner;
      for (std::size_t i = 0; i < inner; ++i) p[i] += add[k];
    }
}

/// Per-channel means of `names` over samples spread over `source`.
inline std::map<std::string, std::vector<double>> channel_means(const model& m, data::sample_source& source, const std::vector<std::string>& names,
                                                                const bias_correction_options& o) {
  std::unordered_map<std::string, std::pair<std::vector<double>, std::int64_t>> acc;
  for (const auto& n : names) acc[n];
  recover::observe_samples(m, source, o.samples, o.batch_size, o.executor, [&](const std::string& name, const tensor& t) {
    auto it = acc.find(name);
    if (it != acc.end()) add_channel_sums(t, it->second.first, it->second.second);
  });
  std::map<std::string, std::vector<double>> out;
  for (auto& [name, a] : acc) {
    if (a.second == 0) continue;
    for (double& v : a.first) v /= static_cast<double>(a.second);
    out[name] = std::move(a.first);
  }
  return out;
}

}  // namespace detail

/// Per-channel means (axis 1) of the tensors `names` of `m` over `o.samples` samples spread over `source`.
inline std::map<std::string, std::vector<double>> layer_output_means(const model& m, data::sample_source& source,
                                                                     const std::vector<std::string>& names, const bias_correction_options& o = {}) {
  return detail::channel_means(m, source, names, o);
}

namespace detail {

/// The Conv/ConvTranspose/Gemm layers of `qdq` whose weights are quantized and whose bias can be
/// changed, among those `wanted` accepts; each without a bias gets one of zeros (int32 behind a
/// DequantizeLinear when `add_int32` and the input is quantized, else float), so correcting
/// only changes numbers.
inline std::vector<correctable> correctable_layers(graph& g, const std::function<bool(const node&)>& wanted, bool add_int32) {
  std::vector<correctable> layers;
  for (node* n : g.nodes()) {
    if (!(n->is("Conv") || n->is("ConvTranspose") || n->is("Gemm")) || !n->output(0) || !wanted(*n)) continue;
    const tensor* ws = dq_initializer(n->input(1), 1);
    if (!ws) continue;  // only layers whose weights are quantized
    const tensor* xs = dq_initializer(n->input(0), 1);
    correctable c;
    c.n = n;
    c.output = n->output(0)->name();
    c.weight_scale = ws;
    c.input_scale = xs ? xs->view<float>()[0] : 0.f;
    value* b = n->input(2);
    if (b && b->producer() && b->producer()->is("DequantizeLinear")) {
      value* q = b->producer()->input(0);
      value* s = b->producer()->input(1);
      if (!q->is_initializer() || q->initializer()->dtype() != dtype::int32 || !s->is_initializer() || q->uses().size() != 1) continue;
      c.int_bias = q->initializer();
      c.int_scale = s->initializer();
    } else if (b && b->is_initializer() && b->initializer()->dtype() == dtype::float32 && b->uses().size() == 1) {
      c.float_bias = b->initializer();
    } else if (b) {
      continue;
    }
    if (n->is("Gemm") && (n->attr_float("beta", 1.f) != 1.f || n->attr_float("alpha", 1.f) != 1.f)) continue;
    layers.push_back(c);
  }
  bool added = false;
  for (auto& c : layers) {
    if (c.int_bias || c.float_bias) continue;
    const std::int64_t wc = output_channels(*c.n);
    if (wc < 1) continue;  // unknown channel count: leave the layer alone
    if (!add_int32 || c.input_scale == 0.f) {
      tensor zeros(dtype::float32, {wc}, g.unique_name(c.n->name() + "_bias"));
      value& bv = g.add_initializer(std::move(zeros));
      while (c.n->inputs().size() < 2) g.append_input(*c.n, nullptr);
      g.set_input(*c.n, 2, &bv);
      c.float_bias = bv.initializer();
    } else {
      tensor zeros(dtype::int32, {wc}, g.unique_name(c.n->name() + "_bias_quantized"));
      tensor scale(dtype::float32, {wc}, g.unique_name(c.n->name() + "_bias_quantized_scale"));
      tensor zp(dtype::int32, {wc}, g.unique_name(c.n->name() + "_bias_quantized_zero_point"));
      const std::size_t ns = c.weight_scale->size();
      for (std::size_t k = 0; k < static_cast<std::size_t>(wc); ++k)
        scale.view<float>()[k] = c.input_scale * c.weight_scale->view<float>()[ns == 1 ? 0 : k % ns];
      value& qv = g.add_initializer(std::move(zeros));
      value& sv = g.add_initializer(std::move(scale));
      value& zv = g.add_initializer(std::move(zp));
      node& dq = g.add_node("DequantizeLinear", {&qv, &sv, &zv}, {g.unique_name(c.n->name() + "_bias_DequantizeLinear_Output")},
                            g.unique_name(c.n->name() + "_bias_DequantizeLinear"));
      dq.set_attribute(attribute::make_int("axis", 0));
      while (c.n->inputs().size() < 2) g.append_input(*c.n, nullptr);
      g.set_input(*c.n, 2, dq.output(0));
      c.int_bias = qv.initializer();
      c.int_scale = sv.initializer();
    }
    added = true;
  }
  if (added) g.topological_sort();
  layers.erase(std::remove_if(layers.begin(), layers.end(), [](const correctable& c) { return !c.int_bias && !c.float_bias; }),
               layers.end());
  return layers;
}

/// Adds `delta` to the layer's bias (an int32 bias rounded to its grid) and returns the change
/// the bias really got per channel.
inline std::vector<float> change_bias(correctable& c, const std::vector<double>& delta) {
  std::vector<float> applied(delta.size(), 0.f);
  if (c.int_bias) {
    auto q32 = c.int_bias->view<std::int32_t>();
    const std::size_t ns = c.int_scale->size();
    for (std::size_t k = 0; k < delta.size() && k < q32.size(); ++k) {
      const double s = c.int_scale->view<float>()[ns == 1 ? 0 : k];
      const double v = std::nearbyint(static_cast<double>(q32[k]) + delta[k] / s);
      const double clipped = std::min(std::max(v, -2147483648.0), 2147483647.0);
      applied[k] = static_cast<float>((clipped - q32[k]) * s);
      q32[k] = static_cast<std::int32_t>(clipped);
    }
  } else if (c.float_bias) {
    auto fb = c.float_bias->view<float>();
    for (std::size_t k = 0; k < delta.size() && k < fb.size(); ++k) {
      const float before = fb[k];
      fb[k] = static_cast<float>(fb[k] + delta[k]);
      applied[k] = fb[k] - before;
    }
  }
  return applied;
}

inline double largest_magnitude(const std::vector<float>& v) {
  double m = 0;
  for (float a : v) m = std::max(m, static_cast<double>(std::fabs(a)));
  return m;
}

}  // namespace detail

/// Corrects the biases of `qdq` in place so that its layers' output means match `float_means`
/// (layer output name -> per-channel means of the float model, from layer_output_means).
inline bias_correction_report correct_biases(model& qdq, const std::map<std::string, std::vector<double>>& float_means,
                                             data::sample_source& source, const bias_correction_options& o = {}) {
  if (o.passes < 1 || o.batch_size < 1 || o.samples < 1)
    throw_error(errc::invalid_argument, "bias correction", "passes, batch size and samples must be >= 1");
  graph& g = qdq.main_graph();
  // Measured in the float model. A layer with a float input (weight-only quantization) gets a
  // float bias: an int32 one needs the input's scale.
  std::vector<detail::correctable> layers =
      detail::correctable_layers(g, [&](const node& n) { return float_means.count(n.output(0)->name()) > 0; }, o.add_int32_bias);
  std::unordered_map<std::string, std::size_t> layer_of;
  for (std::size_t i = 0; i < layers.size(); ++i)
    layer_of.emplace(layers[i].output, i);

  // The samples, read once and kept: every pass runs all batches in lockstep.
  std::vector<data::batch> batches;
  data::for_each_spread_batch(source, o.samples, o.batch_size, [&](data::batch& b) { batches.push_back(std::move(b)); });
  std::vector<std::unordered_map<std::string, const tensor*>> feeds(batches.size());
  for (std::size_t b = 0; b < batches.size(); ++b)
    for (auto& [name, t] : batches[b]) feeds[b].emplace(name, &t);

  bias_correction_report report;
  std::map<std::string, double> shift;
  for (int pass = 0; pass < o.passes; ++pass) {
    runtime::executor ex(qdq, o.executor);
    ex.run_lockstep(feeds, [&](const std::string& name, const std::vector<tensor*>& outs) {
      auto li = layer_of.find(name);
      if (li == layer_of.end()) return;
      auto& c = layers[li->second];
      auto w = float_means.find(c.output);
      std::vector<double> got;
      std::int64_t count = 0;
      for (const tensor* t : outs) detail::add_channel_sums(*t, got, count);
      if (w == float_means.end() || count == 0 || w->second.size() != got.size()) return;
      std::vector<double> delta(got.size());
      for (std::size_t k = 0; k < got.size(); ++k) delta[k] = w->second[k] - got[k] / static_cast<double>(count);
      // The bias change the model now has (the int32 one rounded to its grid).
      const std::vector<float> applied = detail::change_bias(c, delta);
      shift[c.n->name()] += detail::largest_magnitude(applied);
      for (tensor* t : outs) detail::add_per_channel(*t, applied);
    });
    report.passes = pass + 1;
  }
  for (const auto& c : layers)
    if (shift.count(c.n->name())) report.layers.push_back({c.n->name(), shift[c.n->name()]});
  return report;
}

/// Per layer (node name): its float weight summed over the kernel, [M, C / group] row-major (Gemm:
/// [N, K]), as data-free bias correction needs it; from the float model, before quantization.
using kernel_sums = std::map<std::string, std::vector<double>>;

namespace detail {

/// `w` (the layer's weight, float) summed over the kernel positions, [M, C / group]; empty for a
/// layer this does not handle.
inline std::vector<double> kernel_sum(const node& n, const tensor& w) {
  if (w.dtype() != dtype::float32 || w.rank() < 2) return {};
  const auto x = w.view<float>();
  std::vector<double> out;
  if (n.is("Conv")) {
    const std::size_t m = static_cast<std::size_t>(w.shape()[0]), c = static_cast<std::size_t>(w.shape()[1]), k = w.shape().inner(1);
    out.assign(m * c, 0.0);
    for (std::size_t i = 0; i < m * c; ++i)
      for (std::size_t j = 0; j < k; ++j) out[i] += x[i * k + j];
  } else if (n.is("Gemm") && w.rank() == 2) {
    const std::size_t r = static_cast<std::size_t>(w.shape()[0]), c = static_cast<std::size_t>(w.shape()[1]);
    const bool trans = n.attr_int("transB", 0) != 0;  // [N, K] as stored, else [K, N]
    out.assign(r * c, 0.0);
    for (std::size_t i = 0; i < r; ++i)
      for (std::size_t j = 0; j < c; ++j) out[trans ? i * c + j : j * r + i] = x[i * c + j];
  }
  return out;
}

/// Applies one elementwise node to y of channel `ch` (the constants of Max/Min/Clip may be per
/// channel); false for a node this does not model.
inline bool elementwise(const node& n, std::int64_t opset, std::size_t ch, double& y) {
  auto constant = [&](std::size_t input, double& v) {
    const value* c = n.input(input);
    if (!c || !c->is_initializer() || c->initializer()->dtype() != dtype::float32) return false;
    const auto t = c->initializer()->view<float>();
    if (t.size() == 1) v = t[0];
    else if (ch < t.size()) v = t[ch];
    else return false;
    return true;
  };
  if (n.is("Relu")) {
    y = std::max(y, 0.0);
  } else if (n.is("LeakyRelu")) {
    if (y < 0) y *= n.attr_float("alpha", 0.01f);
  } else if (n.is("Identity")) {
  } else if (n.is("Clip")) {
    double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
    if (opset < 11) {
      lo = n.attr_float("min", -std::numeric_limits<float>::max());
      hi = n.attr_float("max", std::numeric_limits<float>::max());
    } else if ((n.input(1) && !constant(1, lo)) || (n.input(2) && !constant(2, hi))) {
      return false;
    }
    y = std::min(std::max(y, lo), hi);
  } else if ((n.is("Max") || n.is("Min")) && n.inputs().size() == 2) {
    double c = 0;
    if (!constant(1, c)) return false;
    y = n.is("Max") ? std::max(y, c) : std::min(y, c);
  } else {
    return false;
  }
  return true;
}

/// E[x] per channel of a layer input `v` of the QDQ model, from the BatchNorm statistics of the
/// layer output upstream: back through Q/DQ pairs (taken as exact) and elementwise activations,
/// then E[f(y)] for y ~ N(mean, stddev^2) per channel by Simpson's rule over mean +- 10 stddev.
/// Empty when `v` does not come from such a layer.
inline std::vector<double> expected_input(const value* v, const passes::batch_norm_statistics& stats, std::int64_t opset) {
  std::vector<const node*> chain;  // from the layer back towards the statistics
  const passes::channel_gaussian* base = nullptr;
  for (int depth = 0; v && depth < 16; ++depth) {
    if (auto it = stats.find(v->name()); it != stats.end()) {
      base = &it->second;
      break;
    }
    const node* p = v->producer();
    if (!p || !p->input(0)) return {};
    if (!(p->is("QuantizeLinear") || p->is("DequantizeLinear"))) chain.push_back(p);
    v = p->input(0);
  }
  if (!base || base->mean.size() != base->stddev.size()) return {};
  std::vector<double> out(base->mean.size());
  auto f = [&](std::size_t ch, double y, bool& ok) {
    for (auto it = chain.rbegin(); it != chain.rend() && ok; ++it) ok = elementwise(**it, opset, ch, y);
    return y;
  };
  constexpr int steps = 2000;  // even
  for (std::size_t ch = 0; ch < out.size(); ++ch) {
    bool ok = true;
    const double mu = base->mean[ch], sd = base->stddev[ch];
    if (!(sd > 0)) {
      out[ch] = f(ch, mu, ok);
    } else {
      const double lo = -10, h = 20.0 / steps;
      double sum = 0;
      for (int i = 0; i <= steps; ++i) {
        const double z = lo + i * h;
        const double w = (i == 0 || i == steps) ? 1 : (i % 2 ? 4 : 2);
        sum += w * f(ch, mu + sd * z, ok) * std::exp(-0.5 * z * z);
      }
      out[ch] = sum * h / 3 / std::sqrt(2 * 3.14159265358979323846);
    }
    if (!ok) return {};
  }
  return out;
}

}  // namespace detail

/// The float weights' kernel sums of the Conv/Gemm layers `nodes` of `float_model` (names), for
/// correct_biases_data_free; call it before the model becomes the QDQ model.
inline kernel_sums layer_kernel_sums(const model& float_model, const std::vector<std::string>& nodes) {
  kernel_sums out;
  std::unordered_map<std::string, const node*> by_name;
  for (const node* n : float_model.main_graph().nodes()) by_name.emplace(n->name(), n);
  for (const auto& name : nodes) {
    auto it = by_name.find(name);
    if (it == by_name.end()) continue;
    const value* w = it->second->input(1);
    if (!w || !w->is_initializer()) continue;
    auto sums = detail::kernel_sum(*it->second, *w->initializer());
    if (!sums.empty()) out[name] = std::move(sums);
  }
  return out;
}

/// Data-free bias correction (DFQ, Nagel et al. 2019, section 4.2): with no calibration data, a
/// layer's expected input E[x] comes from the folded BatchNorm statistics of the layer before it
/// (its output ~ N(B, scale^2) per channel) through the activation between them, and its bias
/// takes away the expected output shift the weight rounding causes, (W~ - W) E[x] per output
/// channel. Layers whose input does not come from a BatchNorm-folded layer are left alone; the
/// shift of zero-padded borders and of the activations' own quantization are not modelled.
/// `float_sums` from layer_kernel_sums of the float model; `stats` from passes::standard_passes
/// (standard_report::bn_statistics), rescaled by any equalization since.
inline bias_correction_report correct_biases_data_free(model& qdq, const kernel_sums& float_sums, const passes::batch_norm_statistics& stats,
                                                       bool add_int32_bias = true) {
  graph& g = qdq.main_graph();
  const std::int64_t opset = qdq.opset();
  bias_correction_report report;
  report.data_free = true;
  // Which layers can be corrected is known before any bias is added.
  std::map<std::string, std::vector<double>> expected;
  for (const node* n : g.nodes()) {
    if (!float_sums.count(n->name()) || !n->input(0)) continue;
    auto e = detail::expected_input(n->input(0), stats, opset);
    if (!e.empty()) expected[n->name()] = std::move(e);
  }
  auto layers = detail::correctable_layers(g, [&](const node& n) { return expected.count(n.name()) > 0; }, add_int32_bias);
  for (auto& c : layers) {
    const node& dq = *c.n->input(1)->producer();
    const tensor& wq = *dq.input(0)->initializer();
    const tensor* zp = dq.input(2) && dq.input(2)->is_initializer() ? dq.input(2)->initializer() : nullptr;
    const qparams p = qparams_from_tensors(*dq.input(1)->initializer(), zp, wq.dtype(), dq.attr_int("axis", 1), dq.attr_int("block_size", 0));
    const std::vector<double> rounded = detail::kernel_sum(*c.n, dequantize(wq, p));
    const std::vector<double>& exact = float_sums.at(c.n->name());
    const std::vector<double>& ex = expected.at(c.n->name());
    const std::int64_t m = detail::output_channels(*c.n);
    if (m < 1 || rounded.size() != exact.size() || exact.size() % static_cast<std::size_t>(m)) continue;
    const std::size_t cg = exact.size() / static_cast<std::size_t>(m);  // inputs per group
    const std::size_t groups = c.n->is("Conv") ? static_cast<std::size_t>(c.n->attr_int("group", 1)) : 1;
    if (cg * groups != ex.size()) continue;  // the statistics are not per input channel
    const std::size_t mg = static_cast<std::size_t>(m) / groups;
    std::vector<double> delta(static_cast<std::size_t>(m), 0.0);
    for (std::size_t o = 0; o < delta.size(); ++o) {
      const std::size_t first = (o / mg) * cg;
      for (std::size_t k = 0; k < cg; ++k) delta[o] -= (rounded[o * cg + k] - exact[o * cg + k]) * ex[first + k];
    }
    const double moved = detail::largest_magnitude(detail::change_bias(c, delta));
    report.layers.push_back({c.n->name(), moved});
  }
  return report;
}

}  // namespace quench::pipeline
