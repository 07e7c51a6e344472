// qat_digits: quantization-aware training in plain C++ with quench's fake-quant ops, from float
// training to a 4-bit ONNX QDQ model that ONNX Runtime runs with the accuracy seen in training.
//
//   qat_digits [--data DIR] [--out DIR]
//
// For each of six seeds:
// 1. Trains a small CNN (qat_digits/cnn.hpp: two 3x3 Convs, MaxPools, a Gemm; Eigen GEMMs,
//    hand-written backward, Adam) on the bundled 8x8 digits (examples/data/digits: 1297 training
//    images, 500 held-out test images).
// 2. PTQ: int4 weights per channel (symmetric [-7, 7], min-max scales), uint8 activations with
//    min-max ranges from the 256 calibration images, evaluated with quench's fake quant.
// 3. QAT: a short fine-tune from the PTQ state with LSQ on the weights (learnable per-channel
//    scales, quench::learnable_fake_quantizer, grad_factor 1/sqrt(numel * quant_max)) and
//    moving-average min-max observers + fake quant on the activations (quench::fake_quantizer);
//    and the same fine-tune with the min-max weight scales frozen, for comparison.
// 4. Writes DIR/seedN/qat_digits_float.onnx (the float network), qat_digits_w4a8.onnx (the LSQ
//    result: int4 weights + DequantizeLinear, uint8 activations, int32 biases, opset 21) and
//    qat_digits_w4a8_int8.onnx (the same integer values in int8 initializers, which ONNX Runtime
//    fuses into QLinearConv), and the test-set predictions of the float and QAT networks in C++
//    (qat_digits_{float,qat}_pred.npy) for tests/examples/qat_digits_test.py to compare with
//    ONNX Runtime.
//
// Deterministic: fixed seeds, one thread, and a fixed Eigen blocking, so the same numbers on
// every run and independent of the machine's cache sizes (not of the compiler's SIMD flags).

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "qat_digits/cnn.hpp"
#include "qat_digits/export.hpp"
#include "quench/adapt/npy.hpp"
#include "quench/core/error.hpp"
#include "quench/onnx/model_io.hpp"

#ifndef QUENCH_SOURCE_DIR
#define QUENCH_SOURCE_DIR "."
#endif

namespace {

using qat_digits::cnn;
using qat_digits::quant_state;

// One network per seed, trained from scratch: how much 4-bit PTQ loses varies a lot between
// seeds (0.6 to 5 points here), so a single run would show either too little or too much.
constexpr std::uint32_t seeds = 6;
constexpr std::int64_t conv1_channels = 8, conv2_channels = 16;
constexpr int float_epochs = 30, qat_epochs = 8;
constexpr std::int64_t batch = 32;
// With Adam the step size, not LSQ's grad_factor, sets how fast the scales move: a fifth of the
// weights' rate keeps them from overshooting.
constexpr float float_lr = 3e-3f, qat_lr = 5e-4f, scale_lr = 1e-4f;

struct dataset {
  quench::tensor x;  // float32 [n,1,8,8]
  std::vector<std::int64_t> y;
  std::int64_t size() const { return x.shape()[0]; }
  const float* image(std::int64_t i) const { return x.view<float>().data() + i * 64; }
};

quench::tensor load_images(const std::filesystem::path& p) {
  quench::tensor t = quench::read_npy(p);
  if (t.dtype() != quench::dtype::float32 || t.rank() != 4 || t.shape()[1] != 1 || t.shape()[2] != 8 || t.shape()[3] != 8)
    quench::throw_error(quench::errc::shape_mismatch, p.string(), "expected float32 [n,1,8,8], found " + quench::to_string(t.dtype()) + " " +
                                                                     quench::to_string(t.shape()));
  return t;
}

dataset load(const std::filesystem::path& dir, const std::string& stem, bool labels = true) {
  dataset d{load_images(dir / (stem + ".npy")), {}};
  if (!labels) return d;
  const quench::tensor l = quench::read_npy(dir / (stem + "_labels.npy"));
  if (l.dtype() != quench::dtype::int64 || l.rank() != 1 || l.shape()[0] != d.size())
    quench::throw_error(quench::errc::shape_mismatch, stem + "_labels.npy", "expected int64 [" + std::to_string(d.size()) + "], found " +
                                                                                quench::to_string(l.dtype()) + " " + quench::to_string(l.shape()));
  d.y.assign(l.view<std::int64_t>().begin(), l.view<std::int64_t>().end());
  for (std::int64_t v : d.y)
    if (v < 0 || v >= cnn::classes) quench::throw_error(quench::errc::invalid_value, stem + "_labels.npy", "expected labels 0..9, found " + std::to_string(v));
  return d;
}

/// A batch of images (copied, so batches can be shuffled) and their labels.
void gather(const dataset& d, const std::vector<std::int64_t>& order, std::int64_t first, std::int64_t n, std::vector<float>& x,
            std::vector<std::int64_t>& y) {
  x.resize(static_cast<std::size_t>(n * 64));
  y.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t s = order[static_cast<std::size_t>(first + i)];
    std::memcpy(x.data() + i * 64, d.image(s), 64 * sizeof(float));
    y[static_cast<std::size_t>(i)] = d.y[static_cast<std::size_t>(s)];
  }
}

/// Fisher-Yates with raw mt19937 draws (std::shuffle's algorithm is implementation-defined).
void shuffle(std::vector<std::int64_t>& order, std::mt19937& rng) {
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
}

/// Predicted classes of the test set (the network in eval mode: observers must be off) and the
/// mean cross-entropy, a finer measure than top-1 on 500 images.
struct evaluation {
  std::vector<std::int64_t> pred;
  double loss = 0;
};

evaluation predict(cnn& net, const dataset& d, quant_state* q) {
  evaluation ev;
  std::vector<std::int64_t>& pred = ev.pred;
  pred.resize(static_cast<std::size_t>(d.size()));
  for (std::int64_t first = 0; first < d.size(); first += 100) {
    const std::int64_t n = std::min<std::int64_t>(100, d.size() - first);
    const auto& logits = net.forward(d.image(first), n, q);
    for (std::int64_t s = 0; s < n; ++s) {
      Eigen::Index k = 0;
      const float mx = logits.col(s).maxCoeff(&k);  // the first maximum, as numpy's argmax
      pred[static_cast<std::size_t>(first + s)] = k;
      double sum = 0;
      for (Eigen::Index c = 0; c < logits.rows(); ++c) sum += std::exp(static_cast<double>(logits(c, s) - mx));
      ev.loss += std::log(sum) - static_cast<double>(logits(d.y[static_cast<std::size_t>(first + s)], s) - mx);
    }
  }
  ev.loss /= static_cast<double>(d.size());
  return ev;
}

std::int64_t correct(const evaluation& ev, const dataset& d) {
  std::int64_t c = 0;
  for (std::size_t i = 0; i < ev.pred.size(); ++i) c += ev.pred[i] == d.y[i];
  return c;
}

/// One epoch of Adam over shuffled mini-batches; with `q`, quantization-aware, and with
/// `scale_moments` too the weights' LSQ scales are stepped. Returns the mean loss.
double epoch(cnn& net, const dataset& d, std::mt19937& rng, float lr, int& step, quant_state* q, std::vector<std::vector<float>>* scale_moments) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(d.size()));
  std::iota(order.begin(), order.end(), 0);
  shuffle(order, rng);
  std::vector<float> x;
  std::vector<std::int64_t> y;
  double loss = 0;
  std::int64_t batches = 0;
  for (std::int64_t first = 0; first < d.size(); first += batch) {
    const std::int64_t n = std::min(batch, d.size() - first);
    gather(d, order, first, n, x, y);
    if (q)
      for (auto& w : q->weight) w.zero_grad();
    net.forward(x.data(), n, q);
    loss += net.backward(y.data());
    ++batches;
    ++step;
    net.adam(lr, step);
    if (q && scale_moments) {
      for (std::size_t l = 0; l < q->weight.size(); ++l) {
        auto& w = q->weight[l];
        auto& mom = *scale_moments;
        qat_digits::adam_step(w.scale(), w.scale_grad(), mom[2 * l], mom[2 * l + 1], scale_lr * lr / qat_lr, step);
      }
    }
  }
  return loss / static_cast<double>(batches);
}

float cosine_lr(float base, int e, int epochs) {
  return base * 0.5f * (1.f + std::cos(3.14159265f * static_cast<float>(e) / static_cast<float>(epochs)));
}

void save_predictions(const std::filesystem::path& p, const std::vector<std::int64_t>& pred) {
  quench::tensor t(quench::dtype::int64, quench::shape{static_cast<std::int64_t>(pred.size())}, "pred");
  std::copy(pred.begin(), pred.end(), t.view<std::int64_t>().begin());
  quench::write_npy(p, t);
}

/// Fine-tunes `net` quantization-aware from the PTQ state `q`: observers running on the
/// activations, frozen for the last epoch (torch's freeze-observer step) so the exported ranges
/// are the ones the final weights were tuned for; with `learn_scales`, LSQ on the weight scales.
/// Leaves `q` in eval mode. Returns the last epoch's loss.
double fine_tune(cnn& net, quant_state& q, bool learn_scales, const dataset& train, std::uint32_t seed) {
  net.reset_optimizer();  // a fresh Adam for the fine-tune
  for (auto& a : q.act) a.enable_observer();
  for (auto& w : q.weight) {
    w.enable_param_learning();
    w.toggle_qparam_learning(learn_scales);
  }
  std::vector<std::vector<float>> moments;
  for (auto& w : q.weight) {
    moments.emplace_back(w.scale().size(), 0.f);
    moments.emplace_back(w.scale().size(), 0.f);
  }
  std::mt19937 rng(seed + 1000);  // the same batches with and without scale learning
  int step = 0;
  double loss = 0;
  for (int e = 0; e < qat_epochs; ++e) {
    if (e == qat_epochs - 1)
      for (auto& a : q.act) a.disable_observer();
    loss = epoch(net, train, rng, cosine_lr(qat_lr, e, qat_epochs), step, &q, learn_scales ? &moments : nullptr);
  }
  for (auto& a : q.act) a.disable_observer();
  return loss;
}

/// The networks of one seed and their test results.
struct seed_result {
  std::uint32_t seed = 0;
  evaluation fp32, ptq, qat, ste;
  double float_loss = 0, qat_loss = 0;
};

/// Trains, quantizes and fine-tunes one network from `seed`; writes its models to `dir`.
seed_result run_seed(std::uint32_t seed, const dataset& train, const dataset& calib, const dataset& test, const std::filesystem::path& dir) {
  seed_result r;
  r.seed = seed;
  cnn net(conv1_channels, conv2_channels, seed);

  // 1. Float training.
  std::mt19937 rng(seed);
  int step = 0;
  for (int e = 0; e < float_epochs; ++e) r.float_loss = epoch(net, train, rng, cosine_lr(float_lr, e, float_epochs), step, nullptr, nullptr);
  r.fp32 = predict(net, test, nullptr);

  // 2. PTQ: min-max weight scales per channel, activation ranges from the calibration images in
  // one batch (an observer's first batch is its min and max).
  quant_state ptq;
  for (int l = 0; l < 3; ++l) ptq.weight.push_back(qat_digits::make_weight_quantizer(net.weight(l).rows));
  net.forward(calib.image(0), calib.size(), &ptq);
  for (auto& a : ptq.act) a.disable_observer();
  for (auto& w : ptq.weight) w.toggle_observer_update(false);  // keep the min-max scales
  r.ptq = predict(net, test, &ptq);

  // 3. QAT from the PTQ state, and the same fine-tune with the min-max weight scales frozen (plain
  // STE), to see what learning the scales adds.
  cnn qnet = net, snet = net;
  quant_state qat = ptq, ste = ptq;
  r.qat_loss = fine_tune(qnet, qat, true, train, seed);
  fine_tune(snet, ste, false, train, seed);
  r.qat = predict(qnet, test, &qat);
  r.ste = predict(snet, test, &ste);

  // 4. Export: the float network, the QAT result with int4 weights, and the same with the int4
  // values in int8 initializers (which ONNX Runtime's CPU provider fuses into QLinearConv).
  std::filesystem::create_directories(dir);
  quench::onnx::save_model(qat_digits::float_model(net), dir / "qat_digits_float.onnx");
  quench::tensor probe(quench::dtype::float32, quench::shape{4, 1, 8, 8}, "input");
  std::memcpy(probe.bytes(), calib.image(0), 4 * 64 * sizeof(float));
  quench::onnx::save_model(qat_digits::qdq_model(qnet, qat, probe, true), dir / "qat_digits_w4a8.onnx");
  quench::onnx::save_model(qat_digits::qdq_model(qnet, qat, probe, false), dir / "qat_digits_w4a8_int8.onnx");
  save_predictions(dir / "qat_digits_float_pred.npy", r.fp32.pred);
  save_predictions(dir / "qat_digits_qat_pred.npy", r.qat.pred);
  return r;
}

double top1(const evaluation& ev, const dataset& d) { return 100.0 * static_cast<double>(correct(ev, d)) / static_cast<double>(d.size()); }

int run(const std::filesystem::path& data_dir, const std::filesystem::path& out_dir) {
  const auto t0 = std::chrono::steady_clock::now();
  // Eigen picks its GEMM blocking (and so the summation order) from the cache sizes it detects;
  // fixed sizes make training give the same numbers on every x86-64 machine.
  Eigen::setCpuCacheSizes(32 * 1024, 256 * 1024, 2 * 1024 * 1024);
  const dataset train = load(data_dir, "digits_train");
  const dataset calib = load(data_dir, "digits_calib", false);
  const dataset test = load(data_dir, "digits_test");
  const std::size_t params = cnn(conv1_channels, conv2_channels, 0).parameter_count();
  std::printf("qat_digits: %lld training / %lld calibration / %lld test images (8x8 digits), CNN Conv3x3x%lld-Relu-MaxPool-Conv3x3x%lld-Relu-MaxPool-Gemm10, "
              "%zu parameters\n",
              static_cast<long long>(train.size()), static_cast<long long>(calib.size()), static_cast<long long>(test.size()),
              static_cast<long long>(conv1_channels), static_cast<long long>(conv2_channels), params);
  std::printf("FP32: %d epochs of Adam (lr %g, cosine); PTQ: W4 per-channel symmetric [-7, 7] min-max, A8 uint8 min-max on the calibration images;\n"
              "QAT: %d epochs from the PTQ state (lr %g, LSQ scales lr %g), W4 learnable per-channel scales, A8 moving-average min-max observers;\n"
              "frozen scales: the same fine-tune with the PTQ weight scales kept (straight-through estimator only)\n",
              float_epochs, static_cast<double>(float_lr), qat_epochs, static_cast<double>(qat_lr), static_cast<double>(scale_lr));
  std::printf("\n%4s%20s%20s%20s%20s\n", "seed", "FP32 top-1 (loss)", "PTQ W4A8", "QAT LSQ W4A8", "QAT frozen scales");
  double sum[4] = {0, 0, 0, 0}, loss[4] = {0, 0, 0, 0};
  for (std::uint32_t s = 1; s <= seeds; ++s) {
    const seed_result r = run_seed(s, train, calib, test, out_dir / ("seed" + std::to_string(s)));
    const evaluation* ev[4] = {&r.fp32, &r.ptq, &r.qat, &r.ste};
    std::printf("%4u", s);
    for (int k = 0; k < 4; ++k) {
      std::printf("%10.2f%% (%.4f)", top1(*ev[k], test), ev[k]->loss);
      sum[k] += top1(*ev[k], test);
      loss[k] += ev[k]->loss;
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  std::printf("mean");
  for (int k = 0; k < 4; ++k) std::printf("%10.2f%% (%.4f)", sum[k] / seeds, loss[k] / seeds);
  std::printf("\n\nwrote %s/seed1..%u/qat_digits_{float,w4a8,w4a8_int8}.onnx (%ju, %ju, %ju bytes for seed 1) and the C++ test-set predictions\n",
              out_dir.string().c_str(), seeds, static_cast<std::uintmax_t>(std::filesystem::file_size(out_dir / "seed1" / "qat_digits_float.onnx")),
              static_cast<std::uintmax_t>(std::filesystem::file_size(out_dir / "seed1" / "qat_digits_w4a8.onnx")),
              static_cast<std::uintmax_t>(std::filesystem::file_size(out_dir / "seed1" / "qat_digits_w4a8_int8.onnx")));
  std::printf("done in %.1f s\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path data_dir = std::filesystem::path(QUENCH_SOURCE_DIR) / "examples" / "data" / "digits", out_dir = ".";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--data" || a == "--out") && i + 1 < argc) {
      (a == "--data" ? data_dir : out_dir) = argv[++i];
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: qat_digits [--data DIR] [--out DIR]\n"
                  "  --data DIR  digits_{train,calib,test}.npy and labels (default: the bundled examples/data/digits)\n"
                  "  --out DIR   where the ONNX models and predictions go (default: .)\n");
      return 0;
    } else {
      std::fprintf(stderr, "qat_digits: unknown or incomplete argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  try {
    return run(data_dir, out_dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qat_digits: %s\n", e.what());
    return 1;
  }
}
