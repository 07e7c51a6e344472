#pragma once
// adaround: AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training
// Quantization"). Rounding every weight to nearest minimises each weight's own error, not the
// layer's output error; AdaRound learns, per weight, whether to round down or up so that the
// layer's output on calibration data moves least. The scales and zero points stay as given, so
// the result is ordinary integer weights for a QDQ model.
//
// Per layer (Conv, Gemm or MatMul with a constant weight W viewed as [M, K] per group), with s the
// weight's scale, z its zero point and [qmin, qmax] the integer range:
//
//     W_soft = s * clamp(floor(W / s) + h(V), qmin - z, qmax - z)
//     h(V)   = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1),   zeta = 1.1, gamma = -0.1
//     loss   = mean over rows x of ||W x - W_soft x||^2  +  lambda * sum(1 - |2 h(V) - 1|^beta)
//
// V starts where h(V) is the fractional part of W / s (so W_soft = W), beta is annealed from 20 to
// 2 with AIMET's cosine schedule after a warm-up (20 % of the iterations) without the regularizer,
// Adam (torch's update, lr 1e-3) runs 10000 iterations, and the weight rounds up where h(V) >= 0.5.
//
// Speed: a row x is one output position's input patch (im2col) or one Gemm/MatMul row. Since
// ||(W - W_soft) x||^2 summed over rows is tr(dW (X^T X) dW^T), the layer's inputs are reduced
// once to the Gram matrix S = X^T X / rows (per group: a depthwise conv has one 9x9 S per
// channel) and every iteration costs one [M, K] x [K, K] product, whatever the number of samples.
// This is the exact gradient of the loss over all rows of all calibration samples (AIMET samples
// mini-batches of 32 images instead; the full-batch gradient has no sampling noise and needs no
// batch RNG). The layer inputs are the float model's (AIMET's default mixes in the quantized
// model's inputs; not done here).
//
//     auto p = quench::pipeline::weight_qparams(*w, {quench::dtype::int4, 0});
//     auto r = quench::recover::adaround(m, data, {{"conv_1", 1, p}});
//     opt.weight_params[w->name()] = p;  opt.weight_values = r.values;   // then quantize_static
//
// `float_model` must be the model quantize_static quantizes after its clean-up passes
// (passes::standard_passes: BatchNorm folded into the conv), else the weights differ.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <Eigen/Dense>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/graph/model.hpp"
#include "quench/numeric/int4.hpp"
#include "quench/quant/qparams.hpp"
#include "quench/recover/observe_samples.hpp"
#include "quench/runtime/executor.hpp"

namespace quench::recover {

/// A Conv/Gemm/MatMul weight input and its (already chosen) qparams: per tensor, or per axis on
/// the output-channel axis (Conv 0, Gemm transB=1 0, Gemm transB=0 and MatMul 1).
struct adaround_target {
  std::string node;
  std::size_t input = 1;
  qparams params;
  /// Integer range of the rounded values; {0, 0}: the whole range of params.type. Give {-7, 7} with
  /// int8 qparams for 4-bit weights held in int8 (rounding up must not leave the 4-bit grid).
  integer_range range{0, 0};
};

struct adaround_progress {
  std::size_t layer = 0, layers = 0;  ///< index of the layer being optimized, number of layers
  std::string name;                   ///< its node
  std::int64_t iteration = 0, iterations = 0;
  double loss = 0;  ///< reconstruction + regularization at this iteration
};

struct adaround_options {
  std::int64_t iterations = 10000;
  /// Samples per executor run while the layer inputs are collected. The optimization itself
  /// uses every row of every sample at each step (see the header comment).
  std::int64_t batch_size = 32;
  double reg_weight = 0.01;  ///< lambda
  double beta_start = 20, beta_end = 2;
  double warmup = 0.2;  ///< fraction of the iterations without the regularizer
  double learning_rate = 1e-3;
  std::int64_t samples = 256;  ///< calibration samples read from the source
  /// Unused by the full-batch optimization (nothing is sampled); kept for a mini-batch variant.
  std::uint64_t seed = 0;
  /// Layers optimized at once; each layer's result does not depend on it.
  int threads = 1;
  runtime::executor_options executor;
  /// Called for every layer and iteration (from the optimizing thread, serialized).
  std::function<void(const adaround_progress&)> progress;
};

struct adaround_layer {
  std::string node, weight;
  double mse_nearest = 0, mse_adaround = 0;  ///< layer output MSE over the calibration rows
  std::size_t flipped = 0;                   ///< weights rounded the other way than nearest
  std::size_t elements = 0;
  double seconds = 0;  ///< optimization time of this layer
};

struct adaround_result {
  /// Weight initializer name -> integer tensor of params.type, shaped like the weight.
  std::map<std::string, std::shared_ptr<const tensor>> values;
  std::vector<adaround_layer> layers;
  double collect_seconds = 0;  ///< the pass over the calibration data
};

namespace detail {

constexpr float adaround_zeta = 1.1f, adaround_gamma = -0.1f;

/// One layer's problem: W as [M, K] (row m of group m / (M / groups)), its scale per row, the
/// Gram matrices per group. Element (m, k) of W is weight element index[m * K + k].
struct adaround_problem {
  std::int64_t m = 0, k = 0, groups = 1;
  std::vector<float> w;            ///< [M, K] row-major
  std::vector<float> scale;        ///< per row
  std::vector<float> lo, hi;       ///< per row: qmin - z, qmax - z
  std::vector<std::int32_t> zero;  ///< per row
  std::vector<float> gram;         ///< groups x [K, K], divided by the rows
  double rows = 0;
};

/// The state being optimized and the pieces of the loss; kept apart so tests can check the
/// backward against finite differences.
struct adaround_state {
  std::vector<float> floor_w;  ///< floor(W / s)
  std::vector<float> v;        ///< [M, K]
};

inline float rectified_sigmoid(float v) {
  const float s = 1.f / (1.f + std::exp(-v));
  return std::min(1.f, std::max(0.f, s * (adaround_zeta - adaround_gamma) + adaround_gamma));
}

inline adaround_state adaround_init(const adaround_problem& p) {
  adaround_state st;
  const std::size_t n = p.w.size();
  st.floor_w.resize(n);
  st.v.resize(n);
  for (std::int64_t r = 0; r < p.m; ++r)
    for (std::int64_t c = 0; c < p.k; ++c) {
      const std::size_t i = static_cast<std::size_t>(r * p.k + c);
      const float x = p.w[i] / p.scale[static_cast<std::size_t>(r)];
      const float f = std::floor(x);
      float rest = x - f;
      st.floor_w[i] = f;
      // h(V) = rest: V = -log((zeta - gamma) / (rest - gamma) - 1).
      st.v[i] = -std::log((adaround_zeta - adaround_gamma) / (rest - adaround_gamma) - 1.f);
    }
  return st;
}

/// Loss at `st` with regularizer exponent beta and weight `reg` (0 during the warm-up); writes
/// d loss / d V into `grad` when it is not null. `rec` receives the reconstruction part.
inline double adaround_loss(const adaround_problem& p, const adaround_state& st, double beta, double reg,
                            std::vector<float>* grad, double* rec = nullptr) {
  using mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const std::size_t n = p.w.size();
  mat dw(p.m, p.k);  // W_soft - W
  std::vector<float> h(n), dh(n), mask(n);
  for (std::int64_t r = 0; r < p.m; ++r) {
    const float s = p.scale[static_cast<std::size_t>(r)], lo = p.lo[static_cast<std::size_t>(r)],
                hi = p.hi[static_cast<std::size_t>(r)];
    for (std::int64_t c = 0; c < p.k; ++c) {
      const std::size_t i = static_cast<std::size_t>(r * p.k + c);
      const float sig = 1.f / (1.f + std::exp(-st.v[i]));
      const float raw = sig * (adaround_zeta - adaround_gamma) + adaround_gamma;
      h[i] = std::min(1.f, std::max(0.f, raw));
      // torch's clamp passes the gradient on the closed interval.
      dh[i] = raw >= 0.f && raw <= 1.f ? (adaround_zeta - adaround_gamma) * sig * (1.f - sig) : 0.f;
      const float q = st.floor_w[i] + h[i];
      mask[i] = q >= lo && q <= hi ? 1.f : 0.f;
      dw(r, c) = s * std::min(hi, std::max(lo, q)) - p.w[i];
    }
  }
  // Reconstruction: sum over groups of tr(dW_g S_g dW_g^T); gradient 2 dW_g S_g.
  const std::int64_t mg = p.m / p.groups;
  mat g(p.m, p.k);
  double recon = 0;
  for (std::int64_t gi = 0; gi < p.groups; ++gi) {
    Eigen::Map<const mat> s(p.gram.data() + static_cast<std::size_t>(gi * p.k * p.k), p.k, p.k);
    g.middleRows(gi * mg, mg).noalias() = dw.middleRows(gi * mg, mg) * s;
  }
  recon = static_cast<double>((dw.array() * g.array()).sum());
  // |2h - 1|^(beta - 1) once per element (a float log and exp: std::pow in double was most of an
  // iteration's time on large layers); the loss and its derivative both come from it.
  double round_loss = 0;
  std::vector<float> pw1;
  if (reg != 0) {
    pw1.resize(n);
    const float b1 = static_cast<float>(beta - 1);
    for (std::size_t i = 0; i < n; ++i) {
      const float a = std::fabs(2.f * h[i] - 1.f);
      pw1[i] = a > 0.f ? std::exp(b1 * std::log(a)) : 0.f;
      round_loss += 1.0 - static_cast<double>(pw1[i] * a);
    }
  }
  if (rec) *rec = recon;
  if (grad) {
    grad->resize(n);
    for (std::int64_t r = 0; r < p.m; ++r) {
      const float s = p.scale[static_cast<std::size_t>(r)];
      for (std::int64_t c = 0; c < p.k; ++c) {
        const std::size_t i = static_cast<std::size_t>(r * p.k + c);
        float d = 2.f * g(r, c) * s * mask[i];
        if (reg != 0) {
          // d/dh of -|2h - 1|^beta.
          const float u = 2.f * h[i] - 1.f;
          d += static_cast<float>(-reg * beta) * pw1[i] * (u > 0.f ? 2.f : u < 0.f ? -2.f : 0.f);
        }
        (*grad)[i] = d * dh[i];
      }
    }
  }
  return recon + reg * round_loss;
}

/// AIMET's schedule: no regularizer for the first `warmup` of the iterations, then beta falls
/// from start to end along a half cosine.
inline void adaround_schedule(const adaround_options& o, std::int64_t t, double& beta, double& reg) {
  const double warm = o.warmup * static_cast<double>(o.iterations);
  if (static_cast<double>(t) < warm) {
    beta = o.beta_start;
    reg = 0;
    return;
  }
  const double rel = (static_cast<double>(t) - warm) / (static_cast<double>(o.iterations) - warm);
  beta = o.beta_end + 0.5 * (o.beta_start - o.beta_end) * (1 + std::cos(rel * 3.14159265358979323846));
  reg = o.reg_weight;
}

/// Runs Adam on `st` for o.iterations steps (torch.optim.Adam's update, betas 0.9/0.999, eps 1e-8).
inline void adaround_optimize(const adaround_problem& p, adaround_state& st, const adaround_options& o,
                              const std::function<void(std::int64_t, double)>& each) {
  const std::size_t n = st.v.size();
  std::vector<float> m1(n, 0.f), m2(n, 0.f), grad;
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  for (std::int64_t t = 0; t < o.iterations; ++t) {
    double beta, reg;
    adaround_schedule(o, t, beta, reg);
    const double loss = adaround_loss(p, st, beta, reg, &grad);
    const double c1 = 1 - std::pow(b1, static_cast<double>(t + 1)),
                 c2 = std::sqrt(1 - std::pow(b2, static_cast<double>(t + 1)));
    const float step = static_cast<float>(o.learning_rate / c1);
    for (std::size_t i = 0; i < n; ++i) {
      m1[i] = static_cast<float>(b1) * m1[i] + static_cast<float>(1 - b1) * grad[i];
      m2[i] = static_cast<float>(b2) * m2[i] + static_cast<float>(1 - b2) * grad[i] * grad[i];
      st.v[i] -= step * m1[i] / (std::sqrt(m2[i]) / static_cast<float>(c2) + static_cast<float>(eps));
    }
    if (each) each(t, loss);
  }
}

/// The output-channel axis a per-axis qparams must use for this weight.
inline std::int64_t adaround_channel_axis(const node& n) {
  if (n.is("Conv")) return 0;
  if (n.is("Gemm")) return n.attr_int("transB", 0) ? 0 : 1;
  return 1;  // MatMul
}

/// Geometry of one layer: how to turn its input tensor into rows and W into [M, K].
struct adaround_layer_spec {
  const node* n = nullptr;
  std::string input, weight;
  const tensor* w = nullptr;
  bool conv = false, trans_a = false, trans_w = false;  ///< trans_w: W stored [K, M]
  std::int64_t groups = 1, kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1;
  std::vector<std::int64_t> pads;  ///< top, left, bottom, right (or computed for SAME_*)
  std::string auto_pad;
  std::int64_t m = 0, k = 0;  ///< per group K
  std::vector<double> gram;   ///< groups x K x K, summed
  double rows = 0;
};

/// Adds X^T X of one observed input to spec.gram.
inline void adaround_accumulate(adaround_layer_spec& sp, const tensor& x) {
  using mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const std::string ctx = sp.n->context() + " input '" + sp.input + "'";
  if (x.dtype() != dtype::float32)
    throw_error(errc::unsupported_dtype, ctx, "expected float32, found " + to_string(x.dtype()));
  const float* xd = x.view<float>().data();
  auto add = [&](const mat& rows, std::int64_t g) {
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> s(sp.k, sp.k);
    s.noalias() = rows.transpose() * rows;
    double* dst = sp.gram.data() + static_cast<std::size_t>(g * sp.k * sp.k);
    for (std::int64_t i = 0; i < sp.k * sp.k; ++i) dst[i] += static_cast<double>(s.data()[i]);
  };
  if (!sp.conv) {
    const std::size_t r = x.rank();
    if (r < 2 || (sp.n->is("Gemm") && r != 2))
      throw_error(errc::shape_mismatch, ctx, "expected a 2-D input, found " + to_string(x.shape()));
    if (!sp.trans_a) {
      if (x.shape()[r - 1] != sp.k)
        throw_error(errc::shape_mismatch, ctx,
                    "expected " + std::to_string(sp.k) + " columns, found " + to_string(x.shape()));
      const std::int64_t rows = static_cast<std::int64_t>(x.size()) / sp.k;
      add(Eigen::Map<const mat>(xd, rows, sp.k), 0);
      sp.rows += static_cast<double>(rows);
    } else {
      if (x.shape()[0] != sp.k)
        throw_error(errc::shape_mismatch, ctx,
                    "expected " + std::to_string(sp.k) + " rows (transA), found " + to_string(x.shape()));
      const std::int64_t rows = x.shape()[1];
      add(Eigen::Map<const mat>(xd, sp.k, rows).transpose(), 0);
      sp.rows += static_cast<double>(rows);
    }
    return;
  }
  // Conv: [N, C, H, W] or [N, C, L].
  const bool one_d = x.rank() == 3;
  if (x.rank() != 4 && !one_d)
    throw_error(errc::shape_mismatch, ctx,
                "expected a [N, C, H, W] or [N, C, L] input, found " + to_string(x.shape()));
  const std::int64_t n = x.shape()[0], c = x.shape()[1], hin = one_d ? 1 : x.shape()[2],
                     win = x.shape()[one_d ? 2 : 3];
  const std::int64_t cg = sp.k / (sp.kh * sp.kw);
  if (c != cg * sp.groups)
    throw_error(errc::shape_mismatch, ctx,
                "expected " + std::to_string(cg * sp.groups) + " channels, found " + to_string(x.shape()));
  std::int64_t pt = sp.pads[0], pl = sp.pads[1], pb = sp.pads[2], pr = sp.pads[3];
  if (sp.auto_pad == "SAME_UPPER" || sp.auto_pad == "SAME_LOWER") {
    auto same = [&](std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t d, std::int64_t& a,
                    std::int64_t& b) {
      const std::int64_t out = (in + s - 1) / s,
                         total = std::max<std::int64_t>(0, (out - 1) * s + (k - 1) * d + 1 - in);
      a = sp.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      b = total - a;
    };
    same(hin, sp.kh, sp.sh, sp.dh, pt, pb);
    same(win, sp.kw, sp.sw, sp.dw, pl, pr);
  }
  const std::int64_t ho = (hin + pt + pb - sp.dh * (sp.kh - 1) - 1) / sp.sh + 1;
  const std::int64_t wo = (win + pl + pr - sp.dw * (sp.kw - 1) - 1) / sp.sw + 1;
  if (ho <= 0 || wo <= 0)
    throw_error(errc::shape_mismatch, ctx, "the kernel does not fit the input " + to_string(x.shape()));
  const std::int64_t positions = ho * wo;
  mat rows(n * positions, sp.k);
  for (std::int64_t g = 0; g < sp.groups; ++g) {
    for (std::int64_t b = 0; b < n; ++b)
      for (std::int64_t oy = 0; oy < ho; ++oy)
        for (std::int64_t ox = 0; ox < wo; ++ox) {
          float* row = rows.data() + static_cast<std::size_t>(((b * ho + oy) * wo + ox) * sp.k);
          std::int64_t col = 0;
          for (std::int64_t ci = 0; ci < cg; ++ci) {
            const float* plane = xd + static_cast<std::size_t>((b * c + g * cg + ci) * hin * win);
            for (std::int64_t ky = 0; ky < sp.kh; ++ky) {
              const std::int64_t iy = oy * sp.sh - pt + ky * sp.dh;
              for (std::int64_t kx = 0; kx < sp.kw; ++kx, ++col) {
                const std::int64_t ix = ox * sp.sw - pl + kx * sp.dw;
                row[col] = iy >= 0 && iy < hin && ix >= 0 && ix < win ? plane[iy * win + ix] : 0.f;
              }
            }
          }
        }
    add(rows, g);
  }
  sp.rows += static_cast<double>(n * positions);
}

inline void write_integer(tensor& t, std::size_t i, std::int32_t v) {
  switch (t.dtype()) {
    case dtype::int8:
      t.view<std::int8_t>()[i] = static_cast<std::int8_t>(v);
      break;
    case dtype::uint8:
      t.view<std::uint8_t>()[i] = static_cast<std::uint8_t>(v);
      break;
    case dtype::int16:
      t.view<std::int16_t>()[i] = static_cast<std::int16_t>(v);
      break;
    case dtype::uint16:
      t.view<std::uint16_t>()[i] = static_cast<std::uint16_t>(v);
      break;
    case dtype::int4:
    case dtype::uint4:
      set_nibble(reinterpret_cast<std::uint8_t*>(t.bytes()), i, static_cast<std::uint8_t>(v & 0x0f));
      break;
    default:
      break;  // rejected before
  }
}

/// Validates the targets and collects each one's Gram matrix in one pass of the float model.
inline std::vector<adaround_layer_spec> adaround_prepare(const model& float_model,
                                                         data::sample_source& source,
                                                         const std::vector<adaround_target>& targets,
                                                         const adaround_options& opt,
                                                         double& collect_seconds) {
  if (opt.iterations < 0) throw_error(errc::invalid_argument, "AdaRound", "iterations must be >= 0");
  if (opt.samples < 1 || opt.batch_size < 1)
    throw_error(errc::invalid_argument, "AdaRound", "samples and batch size must be >= 1");
  if (!(opt.warmup >= 0 && opt.warmup < 1))
    throw_error(errc::invalid_argument, "AdaRound", "warmup must be in [0, 1)");
  if (!(opt.learning_rate > 0) || !(opt.reg_weight >= 0))
    throw_error(errc::invalid_argument, "AdaRound", "learning rate must be > 0 and reg_weight >= 0");
  const graph& g = float_model.main_graph();
  std::unordered_map<std::string, const node*> by_name;
  for (const node* n : g.nodes()) by_name.emplace(n->name(), n);

  std::vector<detail::adaround_layer_spec> specs;
  std::map<std::string, std::size_t> weight_seen;
  for (const adaround_target& t : targets) {
    auto it = by_name.find(t.node);
    if (it == by_name.end())
      throw_error(errc::invalid_argument, "AdaRound target '" + t.node + "'",
                  "the model has no node of that name");
    const node& n = *it->second;
    const std::string ctx = "AdaRound target " + n.context();
    if (!(n.is("Conv") || n.is("Gemm") || n.is("MatMul")) || !n.domain().empty())
      throw_error(errc::unsupported_op, ctx, "expected a Conv, Gemm or MatMul");
    if (t.input != 1)
      throw_error(errc::invalid_argument, ctx,
                  "expected the weight input 1, found input " + std::to_string(t.input));
    const value* wv = n.input(1);
    const value* xv = n.input(0);
    if (!wv || !xv || !wv->is_initializer() || wv->is_graph_input())
      throw_error(errc::invalid_argument, ctx,
                  "weight '" + (wv ? wv->name() : std::string()) + "' is not a constant initializer");
    const tensor& w = *wv->initializer();
    if (w.dtype() != dtype::float32)
      throw_error(errc::unsupported_dtype, ctx + " weight '" + wv->name() + "'",
                  "expected float32, found " + to_string(w.dtype()));
    if (!weight_seen.emplace(wv->name(), specs.size()).second)
      throw_error(errc::invalid_argument, ctx, "weight '" + wv->name() + "' is already a target");
    const qparams& p = t.params;
    const std::string pctx = ctx + " weight '" + wv->name() + "' qparams";
    validate(p, w.shape(), pctx);
    const integer_range full = full_range(p.type);
    if (!(p.type == dtype::int8 || p.type == dtype::uint8 || p.type == dtype::int16 ||
          p.type == dtype::uint16 || p.type == dtype::int4 || p.type == dtype::uint4))
      throw_error(errc::unsupported_dtype, pctx,
                  "expected an 8-, 16- or 4-bit integer type, found " + to_string(p.type));
    if (p.granularity == quant_granularity::blocked)
      throw_error(errc::invalid_argument, pctx, "expected per-tensor or per-axis qparams, found blocked");
    detail::adaround_layer_spec sp;
    sp.n = &n;
    sp.input = xv->name();
    sp.weight = wv->name();
    sp.w = &w;
    const std::int64_t caxis = detail::adaround_channel_axis(n);
    if (n.is("Conv")) {
      if (w.rank() != 4 && w.rank() != 3)
        throw_error(errc::shape_mismatch, ctx + " weight '" + wv->name() + "'",
                    "expected a 1-D or 2-D conv weight, found " + to_string(w.shape()));
      sp.conv = true;
      const bool one_d = w.rank() == 3;
      sp.groups = n.attr_int("group", 1);
      sp.kh = one_d ? 1 : w.shape()[2];
      sp.kw = w.shape()[one_d ? 2 : 3];
      auto st = n.attr_ints("strides", {}), di = n.attr_ints("dilations", {}), pa = n.attr_ints("pads", {});
      const std::size_t sd = one_d ? 1 : 2;
      if ((!st.empty() && st.size() != sd) || (!di.empty() && di.size() != sd) ||
          (!pa.empty() && pa.size() != 2 * sd))
        throw_error(errc::invalid_model, ctx, "strides, dilations or pads do not match the kernel's rank");
      if (one_d) {
        sp.sw = st.empty() ? 1 : st[0];
        sp.dw = di.empty() ? 1 : di[0];
        sp.pads = {0, pa.empty() ? 0 : pa[0], 0, pa.empty() ? 0 : pa[1]};
      } else {
        sp.sh = st.empty() ? 1 : st[0];
        sp.sw = st.empty() ? 1 : st[1];
        sp.dh = di.empty() ? 1 : di[0];
        sp.dw = di.empty() ? 1 : di[1];
        sp.pads = pa.empty() ? std::vector<std::int64_t>{0, 0, 0, 0} : pa;
      }
      sp.auto_pad = n.attr_string("auto_pad", "NOTSET");
      if (sp.auto_pad == "VALID") sp.pads = {0, 0, 0, 0};
      if (sp.sh < 1 || sp.sw < 1 || sp.dh < 1 || sp.dw < 1 || sp.groups < 1 || w.shape()[0] % sp.groups != 0)
        throw_error(errc::invalid_model, ctx,
                    "strides, dilations and group must be >= 1 and divide the output channels");
      sp.m = w.shape()[0];
      sp.k = static_cast<std::int64_t>(w.size()) / sp.m;
    } else {
      if (w.rank() != 2)
        throw_error(errc::shape_mismatch, ctx + " weight '" + wv->name() + "'",
                    "expected a 2-D weight, found " + to_string(w.shape()));
      sp.trans_a = n.is("Gemm") && n.attr_int("transA", 0) != 0;
      sp.trans_w = !(n.is("Gemm") && n.attr_int("transB", 0) != 0);
      sp.m = sp.trans_w ? w.shape()[1] : w.shape()[0];
      sp.k = sp.trans_w ? w.shape()[0] : w.shape()[1];
    }
    if (p.granularity == quant_granularity::per_axis &&
        normalize_axis(p.axis, w.rank(), pctx) != static_cast<std::size_t>(caxis))
      throw_error(errc::invalid_argument, pctx,
                  "expected per-axis scales on the output-channel axis " + std::to_string(caxis) +
                      ", found axis " + std::to_string(p.axis));
    integer_range r = t.range.min == 0 && t.range.max == 0 ? full : t.range;
    if (r.min < full.min || r.max > full.max || r.min >= r.max)
      throw_error(errc::out_of_range, pctx,
                  "range [" + std::to_string(r.min) + ", " + std::to_string(r.max) + "] is not inside " +
                      to_string(p.type) + "'s");
    for (std::size_t i = 0; i < p.count(); ++i)
      if (p.zero_point(i) < r.min || p.zero_point(i) > r.max)
        throw_error(errc::out_of_range, pctx, "zero point outside the range");
    sp.gram.assign(static_cast<std::size_t>(sp.groups * sp.k * sp.k), 0.0);
    specs.push_back(std::move(sp));
  }

  // One pass: every target's Gram matrix from the float model's layer inputs.
  const auto t0 = std::chrono::steady_clock::now();
  std::unordered_map<std::string, std::vector<std::size_t>> readers;
  for (std::size_t i = 0; i < specs.size(); ++i) readers[specs[i].input].push_back(i);
  if (!specs.empty())
    observe_samples(float_model, source, opt.samples, opt.batch_size, opt.executor,
                    [&](const std::string& name, const tensor& t) {
                      auto it = readers.find(name);
                      if (it == readers.end()) return;
                      for (std::size_t i : it->second) detail::adaround_accumulate(specs[i], t);
                    });
  collect_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  return specs;
}

/// The optimization problem of one prepared layer; `index` maps [M, K] positions to weight elements.
inline adaround_problem adaround_problem_of(const adaround_layer_spec& sp, const adaround_target& t,
                                            std::vector<std::size_t>& index) {
  const qparams& p = t.params;
  const integer_range full = full_range(p.type);
  const integer_range r = t.range.min == 0 && t.range.max == 0 ? full : t.range;
  const std::string ctx = "AdaRound target " + sp.n->context();
  if (sp.rows <= 0)
    throw_error(errc::invalid_argument, ctx,
                "input '" + sp.input + "' was never computed on the calibration samples");
  adaround_problem pr;
  pr.m = sp.m;
  pr.k = sp.k;
  pr.groups = sp.groups;
  pr.rows = sp.rows;
  const std::size_t count = static_cast<std::size_t>(sp.m * sp.k);
  pr.w.resize(count);
  const float* w = sp.w->view<float>().data();
  index.assign(count, 0);
  for (std::int64_t m = 0; m < sp.m; ++m)
    for (std::int64_t k = 0; k < sp.k; ++k) {
      const std::size_t i = static_cast<std::size_t>(m * sp.k + k);
      index[i] = sp.trans_w ? static_cast<std::size_t>(k * sp.m + m) : i;
      pr.w[i] = w[index[i]];
      if (!std::isfinite(pr.w[i]))
        throw_error(errc::not_finite, ctx + " weight '" + sp.weight + "'",
                    "element " + std::to_string(index[i]) + " is not finite");
    }
  pr.scale.resize(static_cast<std::size_t>(sp.m));
  pr.zero.resize(pr.scale.size());
  pr.lo.resize(pr.scale.size());
  pr.hi.resize(pr.scale.size());
  for (std::size_t m = 0; m < pr.scale.size(); ++m) {
    const std::size_t pi = p.granularity == quant_granularity::per_axis ? m : 0;
    pr.scale[m] = p.scales[pi];
    pr.zero[m] = p.zero_point(pi);
    pr.lo[m] = static_cast<float>(r.min - pr.zero[m]);
    pr.hi[m] = static_cast<float>(r.max - pr.zero[m]);
  }
  pr.gram.resize(sp.gram.size());
  for (std::size_t i = 0; i < sp.gram.size(); ++i) pr.gram[i] = static_cast<float>(sp.gram[i] / sp.rows);
  return pr;
}

}  // namespace detail

/// AdaRound for every target (see the header comment): one pass of `float_model` over the first
/// `opt.samples` samples for the layer inputs, then an independent optimization per layer.
/// Throws quench::error naming the target for a node that does not exist or is no
/// Conv/Gemm/MatMul, a weight that is not a float32 initializer, or qparams that do not fit it.
inline adaround_result adaround(const model& float_model, data::sample_source& source,
                                const std::vector<adaround_target>& targets,
                                const adaround_options& opt = {}) {
  adaround_result result;
  std::vector<detail::adaround_layer_spec> specs =
      detail::adaround_prepare(float_model, source, targets, opt, result.collect_seconds);
  result.layers.resize(specs.size());
  std::vector<std::shared_ptr<tensor>> values(specs.size());
  std::mutex progress_mutex;
  auto run_layer = [&](std::size_t li) {
    const auto start = std::chrono::steady_clock::now();
    const detail::adaround_layer_spec& sp = specs[li];
    const adaround_target& t = targets[li];
    const qparams& p = t.params;
    std::vector<std::size_t> index;
    detail::adaround_problem pr = detail::adaround_problem_of(sp, t, index);
    const std::size_t count = index.size();
    detail::adaround_state st = detail::adaround_init(pr);
    // Round to nearest (ties to even, as QuantizeLinear) for the comparison.
    detail::adaround_state nearest = st;
    for (std::size_t i = 0; i < count; ++i) {
      const float x = pr.w[i] / pr.scale[i / static_cast<std::size_t>(sp.k)];
      nearest.floor_w[i] = std::nearbyint(x);
      nearest.v[i] = -100.f;  // h = 0 on top of the rounded value
    }
    detail::adaround_optimize(pr, st, opt, [&](std::int64_t it, double loss) {
      if (!opt.progress) return;
      std::lock_guard<std::mutex> lock(progress_mutex);
      opt.progress({li, specs.size(), sp.n->name(), it, opt.iterations, loss});
    });
    // Hard rounding: up where h(V) >= 0.5.
    detail::adaround_state hard = st;
    for (std::size_t i = 0; i < count; ++i)
      hard.v[i] = detail::rectified_sigmoid(st.v[i]) >= 0.5f ? 100.f : -100.f;
    double rec_nearest = 0, rec_hard = 0;
    detail::adaround_loss(pr, nearest, 2, 0, nullptr, &rec_nearest);
    detail::adaround_loss(pr, hard, 2, 0, nullptr, &rec_hard);
    auto out = std::make_shared<tensor>(p.type, sp.w->shape(), sp.weight);
    adaround_layer& lr = result.layers[li];
    lr.node = sp.n->name();
    lr.weight = sp.weight;
    lr.elements = count;
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t row = i / static_cast<std::size_t>(sp.k);
      const float up = hard.v[i] > 0 ? 1.f : 0.f;
      const float q = std::min(pr.hi[row], std::max(pr.lo[row], st.floor_w[i] + up));
      const float qn = std::min(pr.hi[row], std::max(pr.lo[row], nearest.floor_w[i]));
      if (q != qn) ++lr.flipped;
      detail::write_integer(*out, index[i], static_cast<std::int32_t>(q) + pr.zero[row]);
    }
    lr.mse_nearest = rec_nearest / static_cast<double>(sp.m);
    lr.mse_adaround = rec_hard / static_cast<double>(sp.m);
    values[li] = std::move(out);
    lr.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  const std::size_t threads = static_cast<std::size_t>(std::max(1, opt.threads));
  if (threads <= 1 || specs.size() <= 1) {
    for (std::size_t li = 0; li < specs.size(); ++li) run_layer(li);
  } else {
    // Largest layers first would balance better; the index order keeps the code simple and the
    // results are the same either way.
    std::vector<std::thread> pool;
    std::mutex next_mutex, error_mutex;
    std::size_t next = 0;
    std::exception_ptr failure;
    for (std::size_t ti = 0; ti < std::min(threads, specs.size()); ++ti)
      pool.emplace_back([&] {
        for (;;) {
          std::size_t li;
          {
            std::lock_guard<std::mutex> lock(next_mutex);
            if (next >= specs.size()) return;
            li = next++;
          }
          try {
            run_layer(li);
          } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!failure) failure = std::current_exception();
          }
        }
      });
    for (auto& th : pool) th.join();
    if (failure) std::rethrow_exception(failure);
  }
  for (std::size_t li = 0; li < specs.size(); ++li) result.values[specs[li].weight] = std::move(values[li]);
  return result;
}

}  // namespace quench::recover
