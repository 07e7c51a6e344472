#pragma once
// ONNX models of examples/qat_digits.cpp's CNN: the float graph built with quench's graph API,
// and the QAT result as a QDQ model (int4 weights + DequantizeLinear, uint8 activations, int32
// biases) written by quantize_static with the trained parameters given instead of calibrated.

#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "qat_digits/cnn.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/graph/model.hpp"
#include "quench/numeric/int4.hpp"
#include "quench/pipeline/quantize_static.hpp"

namespace qat_digits {

inline const char* const weight_names[3] = {"W1", "W2", "W3"};
inline const char* const bias_names[3] = {"B1", "B2", "B3"};

/// The float network as ONNX (opset 13): input "input" [N,1,8,8] -> logits "logits" [N,10].
inline quench::model float_model(const cnn& net) {
  using quench::attribute;
  quench::model m;
  m.set_opset("", 13);
  m.producer_name = "quench examples/qat_digits";
  auto& g = m.main_graph();
  auto& x = g.add_input("input", 1, std::vector<quench::dim>{quench::dim{{}, "batch"}, quench::dim{1, {}}, quench::dim{8, {}}, quench::dim{8, {}}});
  const std::vector<std::vector<std::int64_t>> wshape{{net.c1(), 1, 3, 3}, {net.c2(), net.c1(), 3, 3}, {cnn::classes, net.c2() * 4}};
  quench::value* w[3];
  quench::value* b[3];
  for (int l = 0; l < 3; ++l) {
    quench::tensor wt(quench::dtype::float32, quench::shape(wshape[static_cast<std::size_t>(l)]), weight_names[l]);
    std::copy(net.weight(l).value.begin(), net.weight(l).value.end(), wt.view<float>().begin());
    w[l] = &g.add_initializer(std::move(wt));
    quench::tensor bt(quench::dtype::float32, quench::shape{net.weight(l).rows}, bias_names[l]);
    std::copy(net.bias(l).value.begin(), net.bias(l).value.end(), bt.view<float>().begin());
    b[l] = &g.add_initializer(std::move(bt));
  }
  quench::value* in = &x;
  for (int l = 0; l < 2; ++l) {
    const std::string k = std::to_string(l + 1);
    auto& conv = g.add_node("Conv", {in, w[l], b[l]}, {"c" + k}, "conv" + k);
    conv.set_attribute(attribute::make_ints("kernel_shape", {3, 3}));
    conv.set_attribute(attribute::make_ints("pads", {1, 1, 1, 1}));
    auto& relu = g.add_node("Relu", {conv.output(0)}, {"r" + k}, "relu" + k);
    auto& pool = g.add_node("MaxPool", {relu.output(0)}, {"p" + k}, "pool" + k);
    pool.set_attribute(attribute::make_ints("kernel_shape", {2, 2}));
    pool.set_attribute(attribute::make_ints("strides", {2, 2}));
    in = pool.output(0);
  }
  auto& flat = g.add_node("Flatten", {in}, {"f"}, "flatten");
  flat.set_attribute(attribute::make_int("axis", 1));
  auto& gemm = g.add_node("Gemm", {flat.output(0), w[2], b[2]}, {"logits"}, "gemm");
  gemm.set_attribute(attribute::make_int("transB", 1));
  g.add_output(*gemm.output(0));
  return m;
}

/// An int8 tensor with values in [-8, 7] as int4 (two per byte, first element in the low nibble).
inline quench::tensor to_int4(const quench::tensor& t) {
  quench::tensor r(quench::dtype::int4, t.shape(), t.name());
  const auto v = t.view<std::int8_t>();
  for (std::int8_t e : v)
    if (e < -8 || e > 7) throw std::runtime_error("qat_digits: " + t.name() + " holds " + std::to_string(e) + ", outside int4");
  quench::pack_4bit(v.data(), v.size(), reinterpret_cast<std::uint8_t*>(r.bytes()));
  return r;
}

/// The integer weights of layer l as the fake quant computed them (round half to even of
/// w * (1/scale), clamped to [-7, 7]), as int8.
inline std::shared_ptr<const quench::tensor> int8_weights(const parameter& w, const std::vector<float>& scales,
                                                         const quench::shape& s, const std::string& name) {
  std::vector<std::int8_t> q(w.size());
  for (std::int64_t r = 0; r < w.rows; ++r) {
    const float inv = 1.f / scales[static_cast<std::size_t>(r)];
    for (std::int64_t c = 0; c < w.cols; ++c) {
      const std::size_t i = static_cast<std::size_t>(r * w.cols + c);
      const float v = std::nearbyint(w.value[i] * inv);  // the default rounding mode: half to even
      q[i] = static_cast<std::int8_t>(std::min<float>(std::max<float>(v, weight_range.min), weight_range.max));
    }
  }
  auto t = std::make_shared<quench::tensor>(quench::dtype::int8, s, name);
  std::copy(q.begin(), q.end(), t->view<std::int8_t>().begin());
  return t;
}

/// The QAT result as a QDQ model for ONNX Runtime: `net`'s (latent float) weights with the
/// trained per-channel scales and integer values, the observed activation scales and zero
/// points, int32 biases; opset 21. The weights are int4 initializers, or with `int4` false int8
/// initializers holding the same [-7, 7] values (ONNX Runtime's CPU provider fuses only 8-bit
/// weights into QLinearConv; 4-bit ones are dequantized and run through the float Conv). Throws if
/// quantize_static wanted to calibrate anything itself (every planned tensor must come from QAT).
inline quench::model qdq_model(const cnn& net, quant_state& q, const quench::tensor& probe_input, bool int4) {
  quench::model m = float_model(net);
  quench::pipeline::quantize_options opt;
  // quantize_static writes 4-bit weights only blocked (the weight-only profile), so the weights go
  // in as int8 holding the [-7, 7] values and are repacked as int4 below; opset 21 for int4.
  opt.profile.min_opset = 21;
  // The activation tensors of the plan (the Relus are absorbed: their Q sits on the Conv output).
  const char* const act_names[3][2] = {{"input", "input"}, {"c1", "r1"}, {"c2", "r2"}};
  for (int i = 0; i < 3; ++i) {
    const quench::fake_quant_params& p = q.act[i].params();
    for (const char* name : act_names[i])
      opt.activation_params[name] = quench::qparams::per_tensor(quench::dtype::uint8, p.scales[0], p.zero_point(0));
  }
  const auto& g = m.main_graph();
  for (int l = 0; l < 3; ++l) {
    const quench::fake_quant_params p = q.weight[static_cast<std::size_t>(l)].calculate_qparams();
    opt.weight_params[weight_names[l]] = quench::qparams::per_axis(quench::dtype::int8, 0, p.scales);
    const quench::value* wv = g.find_value(weight_names[l]);
    opt.weight_values[weight_names[l]] = int8_weights(net.weight(l), p.scales, wv->initializer()->shape(), weight_names[l]);
  }
  std::vector<std::pair<std::string, quench::tensor>> in;
  in.emplace_back("input", probe_input.clone());
  quench::data::tensor_source probe(std::move(in));
  const auto report = quench::pipeline::quantize_static(m, probe, opt);
  for (const auto& t : report.tensors)
    if (t.method != "given" && t.method != "shared")
      throw std::runtime_error("qat_digits: quantize_static chose the range of '" + t.name + "' itself (" + t.method + ")");
  if (report.inserted.weights.size() != 3 || report.inserted.biases.size() != 3)
    throw std::runtime_error("qat_digits: expected 3 quantized weights and 3 int32 biases in the QDQ model");
  if (!int4) return m;
  // The int8 weight initializers and their zero points become int4 (the only int8 constants that
  // feed a DequantizeLinear: activations are uint8 and biases int32).
  std::size_t repacked = 0;
  for (quench::node* n : m.main_graph().nodes()) {
    if (n->op_type() != "DequantizeLinear") continue;
    for (std::size_t i : {std::size_t{0}, std::size_t{2}}) {
      quench::value* v = i < n->inputs().size() ? n->input(i) : nullptr;
      if (!v || !v->is_initializer() || v->initializer()->dtype() != quench::dtype::int8) continue;
      *v->initializer() = to_int4(*v->initializer());
      v->set_elem_type(static_cast<std::int32_t>(quench::dtype::int4));
      repacked += i == 0;
    }
  }
  if (repacked != 3) throw std::runtime_error("qat_digits: expected 3 int8 weights to repack as int4, found " + std::to_string(repacked));
  return m;
}

}  // namespace qat_digits
