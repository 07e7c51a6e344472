#pragma once
// The small CNN of examples/qat_digits.cpp, trained in C++: forward, hand-written backward and
// Adam, with the fake-quant points of the QDQ model quench writes for it.
//
//   input [N,1,8,8] -> Q(8 bit) -> Conv 3x3 pad 1 (W1 [C1,1,3,3]) -> Relu -> Q(8 bit) -> MaxPool 2
//     -> Conv 3x3 pad 1 (W2 [C2,C1,3,3]) -> Relu -> Q(8 bit) -> MaxPool 2 -> Flatten
//     -> Gemm (W3 [10, C2*2*2], transB) -> logits (float, as in the ONNX Runtime profile)
//
// The quantized forward computes what ONNX Runtime computes on the exported QDQ model: weights
// per channel on the output axis, biases as int32 with scale input_scale x weight_scale[c]
// (quench's quantize_bias), the Relu inside the following Q (its zero point is 0, so the Q's clamp
// is the Relu), MaxPool and Flatten on the quantized grid (they share their input's scale), and
// logits in float.
//
// Activations are kept channel-major, [C, N*H*W] (Eigen column-major: NHWC in memory), so a
// convolution is one GEMM of the weights [Cout, Cin*9] with the im2col matrix [Cin*9, N*H*W].
// Everything is single-threaded and seeded; the random numbers come from std::mt19937 (fully
// specified) through our own conversions, not std::*_distribution (implementation-defined).

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "quench/qat/fake_quantize.hpp"
#include "quench/qat/fake_quantizer.hpp"
#include "quench/qat/learnable_fake_quantizer.hpp"

namespace qat_digits {

using matrix = Eigen::MatrixXf;  // column-major
using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// A float in [0, 1) from 24 bits of one mt19937 draw.
inline float uniform01(std::mt19937& rng) { return static_cast<float>(rng() >> 8) * (1.f / 16777216.f); }

/// A weight tensor in ONNX layout (row-major [rows, cols], e.g. OIHW as [O, I*3*3]) with its
/// gradient and Adam moments.
struct parameter {
  std::int64_t rows = 0, cols = 0;
  std::vector<float> value, grad, m, v;

  parameter() = default;
  parameter(std::int64_t r, std::int64_t c) : rows(r), cols(c), value(r * c), grad(r * c), m(r * c), v(r * c) {}
  Eigen::Map<row_matrix> map() { return {value.data(), rows, cols}; }
  Eigen::Map<row_matrix> grad_map() { return {grad.data(), rows, cols}; }
  std::size_t size() const { return value.size(); }
};

/// Adam (Kingma & Ba) with torch.optim.Adam's update order; `step` counts from 1.
inline void adam_step(std::vector<float>& value, const std::vector<float>& grad, std::vector<float>& m, std::vector<float>& v,
                      float lr, int step, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f) {
  const float c1 = 1.f - std::pow(beta1, static_cast<float>(step));
  const float c2 = 1.f - std::pow(beta2, static_cast<float>(step));
  for (std::size_t i = 0; i < value.size(); ++i) {
    m[i] = beta1 * m[i] + (1.f - beta1) * grad[i];
    v[i] = beta2 * v[i] + (1.f - beta2) * grad[i] * grad[i];
    value[i] -= lr * (m[i] / c1) / (std::sqrt(v[i] / c2) + eps);
  }
}

/// Gathers 3x3 pad-1 patches: cols [cin*9, n*h*w] from x [cin, n*h*w].
inline void im2col(const matrix& x, std::int64_t n, std::int64_t h, std::int64_t w, matrix& cols) {
  const std::int64_t cin = x.rows();
  cols.setZero(cin * 9, n * h * w);
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t i = 0; i < h; ++i)
      for (std::int64_t j = 0; j < w; ++j) {
        const std::int64_t p = (s * h + i) * w + j;
        for (std::int64_t di = -1; di <= 1; ++di)
          for (std::int64_t dj = -1; dj <= 1; ++dj) {
            const std::int64_t ii = i + di, jj = j + dj;
            if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
            const std::int64_t q = (s * h + ii) * w + jj, k = (di + 1) * 3 + (dj + 1);
            for (std::int64_t c = 0; c < cin; ++c) cols(c * 9 + k, p) = x(c, q);
          }
      }
}

/// The adjoint of im2col: dx [cin, n*h*w] from dcols.
inline void col2im(const matrix& dcols, std::int64_t cin, std::int64_t n, std::int64_t h, std::int64_t w, matrix& dx) {
  dx.setZero(cin, n * h * w);
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t i = 0; i < h; ++i)
      for (std::int64_t j = 0; j < w; ++j) {
        const std::int64_t p = (s * h + i) * w + j;
        for (std::int64_t di = -1; di <= 1; ++di)
          for (std::int64_t dj = -1; dj <= 1; ++dj) {
            const std::int64_t ii = i + di, jj = j + dj;
            if (ii < 0 || ii >= h || jj < 0 || jj >= w) continue;
            const std::int64_t q = (s * h + ii) * w + jj, k = (di + 1) * 3 + (dj + 1);
            for (std::int64_t c = 0; c < cin; ++c) dx(c, q) += dcols(c * 9 + k, p);
          }
      }
}

/// 2x2 stride-2 max pooling of x [c, n*h*w]; arg keeps the winning input column per output.
/// Ties go to the first element in row-major window order, as ONNX Runtime's MaxPool.
inline void maxpool2(const matrix& x, std::int64_t n, std::int64_t h, std::int64_t w, matrix& y, std::vector<std::int64_t>& arg) {
  const std::int64_t c = x.rows(), oh = h / 2, ow = w / 2;
  y.resize(c, n * oh * ow);
  arg.resize(static_cast<std::size_t>(c * n * oh * ow));
  for (std::int64_t s = 0; s < n; ++s)
    for (std::int64_t i = 0; i < oh; ++i)
      for (std::int64_t j = 0; j < ow; ++j) {
        const std::int64_t o = (s * oh + i) * ow + j;
        for (std::int64_t ch = 0; ch < c; ++ch) {
          std::int64_t best = (s * h + 2 * i) * w + 2 * j;
          for (std::int64_t di = 0; di < 2; ++di)
            for (std::int64_t dj = 0; dj < 2; ++dj) {
              const std::int64_t q = (s * h + 2 * i + di) * w + 2 * j + dj;
              if (x(ch, q) > x(ch, best)) best = q;
            }
          y(ch, o) = x(ch, best);
          arg[static_cast<std::size_t>(o * c + ch)] = best;
        }
      }
}

/// Per-channel symmetric weight range [-7, 7]: 4 bits without the lone -8, so that the scale is
/// max|w| / 7 and the grid is symmetric (LSQ's signed range minus one level; the exported int4
/// tensors never hold -8).
inline constexpr quench::integer_range weight_range{-7, 7};
/// Activations: uint8 affine, as the ONNX Runtime profile writes them.
inline constexpr quench::integer_range activation_range{0, 255};

inline quench::observer_options weight_observer() {
  quench::observer_options o;
  o.type = quench::dtype::int8;
  o.symmetric = true;
  o.range = weight_range;
  o.ch_axis = 0;
  return o;
}

inline quench::fake_quantizer_options activation_fake_quant() {
  quench::fake_quantizer_options o;
  o.observer.type = quench::dtype::uint8;
  o.observer.range = activation_range;
  return o;  // MovingAverageMinMaxObserver, averaging constant 0.01, affine
}

inline quench::learnable_fake_quantizer make_weight_quantizer(std::int64_t channels) {
  quench::learnable_fake_quantizer_options o;
  o.observer = weight_observer();
  o.range = weight_range;
  o.channels = static_cast<std::size_t>(channels);
  o.use_grad_scaling = true;  // LSQ: grad_factor = 1 / sqrt(numel * quant_max)
  return quench::learnable_fake_quantizer(o);
}

/// The fake-quant state of the network: three activation quantizers (input, after each Relu) and
/// three learnable weight quantizers.
struct quant_state {
  quench::fake_quantizer act[3] = {quench::fake_quantizer(activation_fake_quant()), quench::fake_quantizer(activation_fake_quant()),
                                   quench::fake_quantizer(activation_fake_quant())};
  std::vector<quench::learnable_fake_quantizer> weight;

  float act_scale(int i) const { return act[i].params().scales[0]; }
};

class cnn {
 public:
  static constexpr std::int64_t classes = 10;

  cnn(std::int64_t c1, std::int64_t c2, std::uint32_t seed) : c1_(c1), c2_(c2) {
    w_[0] = parameter(c1, 9);
    w_[1] = parameter(c2, c1 * 9);
    w_[2] = parameter(classes, c2 * 4);
    for (int l = 0; l < 3; ++l) b_[l] = parameter(w_[l].rows, 1);
    std::mt19937 rng(seed);
    for (int l = 0; l < 3; ++l) {
      // torch's default (Kaiming uniform with a = sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
      const float bound = 1.f / std::sqrt(static_cast<float>(w_[l].cols));
      for (float& v : w_[l].value) v = (2.f * uniform01(rng) - 1.f) * bound;
      for (float& v : b_[l].value) v = (2.f * uniform01(rng) - 1.f) * bound;
    }
  }

  std::int64_t c1() const { return c1_; }
  std::int64_t c2() const { return c2_; }
  parameter& weight(int l) { return w_[l]; }
  parameter& bias(int l) { return b_[l]; }
  const parameter& weight(int l) const { return w_[l]; }
  const parameter& bias(int l) const { return b_[l]; }
  std::size_t parameter_count() const {
    std::size_t n = 0;
    for (int l = 0; l < 3; ++l) n += w_[l].size() + b_[l].size();
    return n;
  }

  /// Logits [10, n] of images x (n x 64 floats, NCHW with C = 1). With `q`, the fake-quantized
  /// network; with q->learn, observers update and the backward pass can follow.
  const matrix& forward(const float* x, std::int64_t n, quant_state* q) {
    n_ = n;
    q_ = q;
    x0_ = Eigen::Map<const matrix>(x, 1, n * 64);
    if (q) fq_act(0, x0_, mask_[0]);
    // conv1
    prepare_weights(0);
    im2col(x0_, n, 8, 8, cols1_);
    z1_ = wq_[0] * cols1_;
    z1_.colwise() += bq_[0];
    a1_ = z1_.cwiseMax(0.f);
    if (q) fq_act(1, a1_, mask_[1]);
    maxpool2(a1_, n, 8, 8, p1_, arg1_);
    // conv2
    prepare_weights(1);
    im2col(p1_, n, 4, 4, cols2_);
    z2_ = wq_[1] * cols2_;
    z2_.colwise() += bq_[1];
    a2_ = z2_.cwiseMax(0.f);
    if (q) fq_act(2, a2_, mask_[2]);
    maxpool2(a2_, n, 4, 4, p2_, arg2_);
    // Flatten of NCHW: feature c*4 + (i*2 + j).
    feat_.resize(c2_ * 4, n);
    for (std::int64_t s = 0; s < n; ++s)
      for (std::int64_t c = 0; c < c2_; ++c)
        for (std::int64_t k = 0; k < 4; ++k) feat_(c * 4 + k, s) = p2_(c, s * 4 + k);
    prepare_weights(2);
    logits_ = wq_[2] * feat_;
    logits_.colwise() += bq_[2];
    return logits_;
  }

  /// Mean softmax cross-entropy of the last forward against `labels`; fills the parameter
  /// gradients (and, when training quantized, the weight quantizers' scale gradients).
  double backward(const std::int64_t* labels) {
    const std::int64_t n = n_;
    matrix dl(classes, n);
    double loss = 0;
    for (std::int64_t s = 0; s < n; ++s) {
      const float mx = logits_.col(s).maxCoeff();
      double sum = 0;
      for (std::int64_t k = 0; k < classes; ++k) sum += std::exp(static_cast<double>(logits_(k, s) - mx));
      for (std::int64_t k = 0; k < classes; ++k) {
        const double p = std::exp(static_cast<double>(logits_(k, s) - mx)) / sum;
        dl(k, s) = static_cast<float>((p - (k == labels[s] ? 1.0 : 0.0)) / static_cast<double>(n));
      }
      loss -= static_cast<double>(logits_(labels[s], s) - mx) - std::log(sum);
    }
    // Gemm
    weight_grad(2, dl * feat_.transpose());
    b_[2].grad_map() = dl.rowwise().sum();
    const matrix dfeat = wq_[2].transpose() * dl;
    matrix dp2(c2_, n * 4);
    for (std::int64_t s = 0; s < n; ++s)
      for (std::int64_t c = 0; c < c2_; ++c)
        for (std::int64_t k = 0; k < 4; ++k) dp2(c, s * 4 + k) = dfeat(c * 4 + k, s);
    // pool2, fake quant, relu
    matrix da2 = matrix::Zero(c2_, n * 16);
    unpool(dp2, arg2_, da2);
    act_backward(2, z2_, da2);
    // conv2
    weight_grad(1, da2 * cols2_.transpose());
    b_[1].grad_map() = da2.rowwise().sum();
    const matrix dcols2 = wq_[1].transpose() * da2;
    matrix dp1;
    col2im(dcols2, c1_, n, 4, 4, dp1);
    matrix da1 = matrix::Zero(c1_, n * 64);
    unpool(dp1, arg1_, da1);
    act_backward(1, z1_, da1);
    // conv1 (the input needs no gradient)
    weight_grad(0, da1 * cols1_.transpose());
    b_[0].grad_map() = da1.rowwise().sum();
    return loss / static_cast<double>(n);
  }

  /// Forgets Adam's moments: a fresh optimizer for the fine-tune.
  void reset_optimizer() {
    for (parameter* p : {&w_[0], &w_[1], &w_[2], &b_[0], &b_[1], &b_[2]}) {
      std::fill(p->m.begin(), p->m.end(), 0.f);
      std::fill(p->v.begin(), p->v.end(), 0.f);
    }
  }

  void adam(float lr, int step) {
    for (int l = 0; l < 3; ++l) {
      adam_step(w_[l].value, w_[l].grad, w_[l].m, w_[l].v, lr, step);
      adam_step(b_[l].value, b_[l].grad, b_[l].m, b_[l].v, lr, step);
    }
  }

  /// The int32-grid bias of layer l as the QDQ model holds it: q = nearbyint(b / (sx * sw[c]))
  /// in double (insert_qdq's quantize_bias), dequantized in float as DequantizeLinear does.
  static float quantized_bias(float b, float sx, float sw) {
    const float s = sx * sw;
    const double r = std::nearbyint(static_cast<double>(b) / static_cast<double>(s));
    return static_cast<float>(static_cast<std::int32_t>(r)) * s;
  }

 private:
  /// Fake-quantizes an activation in place, keeping the STE mask.
  void fq_act(int i, matrix& a, std::vector<std::uint8_t>& mask) {
    const quench::shape s{a.size()};
    mask.resize(static_cast<std::size_t>(a.size()));
    q_->act[i].forward(quench::const_tensor_view<float>(a.data(), s), quench::tensor_view<float>(a.data(), s),
                       quench::tensor_view<std::uint8_t>(mask.data(), s));
  }

  /// wq_[l], bq_[l]: the weights and bias the layer computes with (fake-quantized when q_).
  void prepare_weights(int l) {
    parameter& w = w_[l];
    wq_[l] = w.map();
    bq_[l] = Eigen::Map<const Eigen::VectorXf>(b_[l].value.data(), w.rows);
    if (!q_) return;
    const quench::shape s{w.rows, w.cols};
    row_matrix fq(w.rows, w.cols);
    q_->weight[static_cast<std::size_t>(l)].forward(quench::const_tensor_view<float>(w.value.data(), s),
                                                    quench::tensor_view<float>(fq.data(), s));
    wq_[l] = fq;
    const float sx = q_->act_scale(l);
    const std::vector<float>& sw = q_->weight[static_cast<std::size_t>(l)].scale();
    for (std::int64_t c = 0; c < w.rows; ++c) bq_[l](c) = quantized_bias(b_[l].value[static_cast<std::size_t>(c)], sx, sw[static_cast<std::size_t>(c)]);
  }

  /// dW of layer l from the gradient of the weights it computed with: straight through the
  /// learnable fake quant (which also adds the LSQ scale gradient) when quantized.
  void weight_grad(int l, const matrix& dwq) {
    parameter& w = w_[l];
    row_matrix d = dwq;
    if (!q_) {
      w.grad_map() = d;
      return;
    }
    const quench::shape s{w.rows, w.cols};
    q_->weight[static_cast<std::size_t>(l)].backward(quench::const_tensor_view<float>(d.data(), s),
                                                     quench::const_tensor_view<float>(w.value.data(), s),
                                                     quench::tensor_view<float>(w.grad.data(), s));
  }

  static void unpool(const matrix& dy, const std::vector<std::int64_t>& arg, matrix& dx) {
    const std::int64_t c = dy.rows();
    for (std::int64_t o = 0; o < dy.cols(); ++o)
      for (std::int64_t ch = 0; ch < c; ++ch) dx(ch, arg[static_cast<std::size_t>(o * c + ch)]) += dy(ch, o);
  }

  /// Through the fake quant after a Relu (its STE mask) and the Relu (z > 0).
  void act_backward(int i, const matrix& z, matrix& da) {
    if (q_) {
      const quench::shape s{da.size()};
      q_->act[i].backward(quench::const_tensor_view<float>(da.data(), s),
                          quench::const_tensor_view<std::uint8_t>(mask_[i].data(), s), quench::tensor_view<float>(da.data(), s));
    }
    da = (z.array() > 0.f).select(da, 0.f);
  }

  std::int64_t c1_, c2_;
  parameter w_[3], b_[3];
  matrix wq_[3];
  Eigen::VectorXf bq_[3];
  std::int64_t n_ = 0;
  quant_state* q_ = nullptr;
  matrix x0_, cols1_, z1_, a1_, p1_, cols2_, z2_, a2_, p2_, feat_, logits_;
  std::vector<std::int64_t> arg1_, arg2_;
  std::vector<std::uint8_t> mask_[3];
};

}  // namespace qat_digits
