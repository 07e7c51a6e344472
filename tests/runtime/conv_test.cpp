// Conv, ConvTranspose, ConvInteger and QLinearConv: hand-checked cases, a direct-loop reference
// over many geometries (1-D/2-D/3-D, groups, depthwise, pointwise, strides, dilations, pads,
// auto_pad), thread-count independence, and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "quench/runtime/executor.hpp"

namespace rt = quench::runtime;
using quench::attribute;
using quench::tensor;

namespace {

/// One node in a model of its own, run by the executor.
struct node_runner {
  explicit node_runner(std::string op_type, std::int64_t version = 17) : op(std::move(op_type)), opset(version) {}

  std::string op;
  std::int64_t opset;
  std::map<std::string, std::vector<std::int64_t>> ints;
  std::map<std::string, std::int64_t> int_attrs;
  std::map<std::string, float> float_attrs;
  std::map<std::string, std::string> string_attrs;

  quench::model build(const std::vector<const tensor*>& inputs, std::size_t outputs) const {
    quench::model m;
    m.set_opset("", opset);
    auto& g = m.main_graph();
    std::vector<quench::value*> ins;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      ins.push_back(inputs[i] ? &g.add_input("in" + std::to_string(i), static_cast<std::int32_t>(inputs[i]->dtype())) : nullptr);
    std::vector<std::string> outs;
    for (std::size_t i = 0; i < outputs; ++i) outs.push_back("out" + std::to_string(i));
    auto& n = g.add_node(op, ins, outs, "n0");
    for (const auto& [k, v] : ints) n.set_attribute(attribute::make_ints(k, v));
    for (const auto& [k, v] : int_attrs) n.set_attribute(attribute::make_int(k, v));
    for (const auto& [k, v] : float_attrs) n.set_attribute(attribute::make_float(k, v));
    for (const auto& [k, v] : string_attrs) n.set_attribute(attribute::make_string(k, v));
    for (std::size_t i = 0; i < outputs; ++i) g.add_output(*n.output(i));
    return m;
  }
  std::vector<tensor> run(const std::vector<const tensor*>& inputs, std::size_t outputs = 1, int threads = 1) const {
    const quench::model m = build(inputs, outputs);
    rt::executor ex(m, rt::executor_options{threads, nullptr});
    std::unordered_map<std::string, const tensor*> feed;
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i]) feed["in" + std::to_string(i)] = inputs[i];
    return ex.run(feed);
  }
};

template <class T>
tensor random_tensor(quench::shape s, std::mt19937& rng, double lo = -1, double hi = 1) {
  tensor t(quench::dtype_of_v<T>, std::move(s));
  std::uniform_real_distribution<double> d(lo, hi);
  for (auto& v : t.view<T>()) v = static_cast<T>(d(rng));
  return t;
}

struct conv_case {
  std::vector<std::int64_t> in, kernel, stride, dilation, pads;
  std::int64_t batch, channels, out_channels, group;
  std::string auto_pad = "NOTSET";
};

/// Direct-loop convolution in double: the definition, with no shortcuts.
std::vector<double> reference_conv(const conv_case& c, const std::vector<std::int64_t>& out, const std::vector<std::int64_t>& pad_begin,
                                   const tensor& x, const tensor& w, const tensor* b) {
  const std::size_t r = c.in.size();
  std::int64_t pin = 1, pout = 1, ks = 1;
  for (std::size_t i = 0; i < r; ++i) {
    pin *= c.in[i];
    pout *= out[i];
    ks *= c.kernel[i];
  }
  const std::int64_t cg = c.channels / c.group, mg = c.out_channels / c.group;
  const auto xv = x.view<float>();
  const auto wv = w.view<float>();
  std::vector<double> y(static_cast<std::size_t>(c.batch * c.out_channels * pout));
  std::vector<std::int64_t> o(r), k(r);
  for (std::int64_t n = 0; n < c.batch; ++n)
    for (std::int64_t m = 0; m < c.out_channels; ++m)
      for (std::int64_t p = 0; p < pout; ++p) {
        std::int64_t rest = p;
        for (std::size_t d = r; d-- > 0;) {
          o[d] = rest % out[d];
          rest /= out[d];
        }
        double acc = b ? b->view<float>()[static_cast<std::size_t>(m)] : 0.0;
        const std::int64_t g = m / mg;
        for (std::int64_t ci = 0; ci < cg; ++ci)
          for (std::int64_t q = 0; q < ks; ++q) {
            std::int64_t kr = q, idx = 0;
            bool inside = true;
            for (std::size_t d = r; d-- > 0;) {
              k[d] = kr % c.kernel[d];
              kr /= c.kernel[d];
            }
            for (std::size_t d = 0; d < r; ++d) {
              const std::int64_t pos = o[d] * c.stride[d] - pad_begin[d] + k[d] * c.dilation[d];
              inside = inside && pos >= 0 && pos < c.in[d];
              idx = idx * c.in[d] + pos;
            }
            if (!inside) continue;
            const double xval = xv[static_cast<std::size_t>((n * c.channels + g * cg + ci) * pin + idx)];
            acc += xval * wv[static_cast<std::size_t>((m * cg + ci) * ks + q)];
          }
        y[static_cast<std::size_t>((n * c.out_channels + m) * pout + p)] = acc;
      }
  return y;
}

void check_conv_case(const conv_case& c, std::mt19937& rng, bool with_bias) {
  const std::size_t r = c.in.size();
  std::vector<std::int64_t> xs{c.batch, c.channels}, ws{c.out_channels, c.channels / c.group};
  xs.insert(xs.end(), c.in.begin(), c.in.end());
  ws.insert(ws.end(), c.kernel.begin(), c.kernel.end());
  const tensor x = random_tensor<float>(quench::shape(xs), rng);
  const tensor w = random_tensor<float>(quench::shape(ws), rng);
  const tensor b = random_tensor<float>({c.out_channels}, rng);
  node_runner conv{"Conv"};
  conv.ints["strides"] = c.stride;
  conv.ints["dilations"] = c.dilation;
  conv.int_attrs["group"] = c.group;
  conv.string_attrs["auto_pad"] = c.auto_pad;
  if (c.auto_pad == "NOTSET") conv.ints["pads"] = c.pads;
  // Expected output size and begin padding, from the ONNX formulas.
  std::vector<std::int64_t> out(r), pad_begin(r);
  for (std::size_t i = 0; i < r; ++i) {
    const std::int64_t ext = (c.kernel[i] - 1) * c.dilation[i] + 1;
    if (c.auto_pad == "SAME_UPPER" || c.auto_pad == "SAME_LOWER") {
      out[i] = (c.in[i] + c.stride[i] - 1) / c.stride[i];
      const std::int64_t total = std::max<std::int64_t>(0, (out[i] - 1) * c.stride[i] + ext - c.in[i]);
      pad_begin[i] = c.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
    } else if (c.auto_pad == "VALID") {
      out[i] = (c.in[i] - ext) / c.stride[i] + 1;
      pad_begin[i] = 0;
    } else {
      out[i] = (c.in[i] + c.pads[i] + c.pads[i + r] - ext) / c.stride[i] + 1;
      pad_begin[i] = c.pads[i];
    }
  }
  const auto y = conv.run({&x, &w, with_bias ? &b : nullptr});
  const auto want = reference_conv(c, out, pad_begin, x, w, with_bias ? &b : nullptr);
  std::vector<std::int64_t> ys{c.batch, c.out_channels};
  ys.insert(ys.end(), out.begin(), out.end());
  REQUIRE(y[0].shape() == quench::shape(ys));
  const auto got = y[0].view<float>();
  std::size_t bad = 0;
  for (std::size_t i = 0; i < want.size(); ++i)
    if (std::fabs(got[i] - want[i]) > 1e-5 + 1e-5 * std::fabs(want[i])) ++bad;
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("Conv: a hand-checked 2-D case with bias and padding") {
  const tensor x = tensor::from<float>({1, 1, 3, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8});
  const tensor w = tensor::from<float>({1, 1, 2, 2}, {1, 1, 1, 1});
  const tensor b = tensor::from<float>({1}, {0.5f});
  node_runner conv{"Conv"};
  auto y = conv.run({&x, &w, &b});
  CHECK(y[0].shape() == quench::shape{1, 1, 2, 2});
  std::vector<float> got(y[0].view<float>().begin(), y[0].view<float>().end());
  CHECK(got == std::vector<float>{8.5f, 12.5f, 20.5f, 24.5f});

  conv.ints["pads"] = {1, 1, 0, 0};  // top and left only
  y = conv.run({&x, &w, nullptr});
  CHECK(y[0].shape() == quench::shape{1, 1, 3, 3});
  got.assign(y[0].view<float>().begin(), y[0].view<float>().end());
  CHECK(got == std::vector<float>{0, 1, 3, 3, 8, 12, 9, 20, 24});
}

TEST_CASE("Conv matches a direct loop over 1-D, 2-D and 3-D geometries") {
  std::mt19937 rng(7);
  std::vector<conv_case> cases = {
      // 2-D general (im2col), with strides, dilations and asymmetric pads
      {{7, 9}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 2, 3, 4, 1},
      {{8, 7}, {3, 2}, {2, 3}, {1, 1}, {0, 1, 2, 0}, 1, 4, 6, 2},
      {{9, 9}, {3, 3}, {2, 2}, {2, 1}, {2, 1, 0, 2}, 1, 6, 6, 3},
      {{5, 6}, {5, 5}, {1, 1}, {1, 1}, {2, 2, 2, 2}, 1, 2, 3, 1},
      // general convs with stride 2 along the rows (the even/odd split of the packed path), odd
      // and even widths, dilated, and a stem-like 7x7 / 2 with pads 3; a 1-D one
      {{11, 13}, {7, 7}, {2, 2}, {1, 1}, {3, 3, 3, 3}, 2, 3, 5, 1},
      {{10, 12}, {3, 3}, {2, 2}, {1, 2}, {1, 2, 0, 1}, 1, 4, 6, 2},
      {{9, 9}, {2, 4}, {1, 2}, {2, 1}, {0, 1, 1, 0}, 1, 3, 7, 1},
      {{15}, {5}, {2}, {1}, {2, 1}, 2, 3, 4, 1},
      {{6, 40}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 1, 2, 13, 1},  // rows wider than a panel
      // depthwise, with and without a channel multiplier, strided and dilated
      {{8, 8}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 2, 4, 4, 4},
      {{9, 7}, {3, 3}, {2, 2}, {1, 2}, {1, 0, 1, 2}, 1, 3, 6, 3},
      {{6, 6}, {1, 3}, {1, 3}, {1, 1}, {0, 1, 0, 1}, 1, 2, 2, 2},
      {{9, 10}, {5, 5}, {1, 1}, {1, 1}, {2, 2, 2, 2}, 1, 3, 3, 3},
      {{9, 10}, {5, 5}, {2, 2}, {1, 2}, {2, 1, 1, 3}, 1, 3, 3, 3},
      {{6, 7}, {2, 2}, {1, 1}, {1, 1}, {1, 0, 0, 1}, 1, 2, 2, 2},
      {{12}, {7}, {2}, {1}, {3, 3}, 1, 2, 2, 2},
      {{9, 11}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, 1, 4, 4, 4},  // stride 2: even/odd split
      {{8, 8}, {5, 5}, {2, 2}, {1, 1}, {2, 1, 2, 2}, 2, 2, 2, 2},
      {{7, 13}, {3, 3}, {2, 2}, {1, 1}, {0, 2, 1, 0}, 1, 2, 4, 2},
      {{3, 4}, {3, 3}, {1, 1}, {1, 1}, {2, 2, 2, 2}, 1, 2, 2, 2},  // taps mostly in padding
      // pointwise (direct GEMM) and pointwise with stride (im2col)
      {{5, 7}, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 2, 6, 5, 1},
      {{5, 7}, {1, 1}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 1, 4, 4, 2},
      // 1-D (depthwise and grouped) and 3-D
      {{11}, {3}, {2}, {2}, {1, 2}, 2, 4, 4, 4},
      {{10}, {4}, {1}, {1}, {0, 3}, 1, 4, 6, 2},
      {{4, 5, 6}, {2, 3, 2}, {1, 2, 1}, {1, 1, 2}, {1, 0, 1, 0, 1, 1}, 1, 4, 4, 2},
      {{4, 4, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1, 1, 1, 1}, 1, 3, 3, 3},
  };
  for (const std::string pad : {"SAME_UPPER", "SAME_LOWER", "VALID"}) {
    cases.push_back({{7, 8}, {3, 2}, {2, 3}, {1, 1}, {}, 1, 2, 3, 1, pad});
    cases.push_back({{6, 5}, {2, 2}, {1, 1}, {1, 1}, {}, 1, 3, 3, 3, pad});
    cases.push_back({{9}, {4}, {2}, {1}, {}, 1, 2, 2, 1, pad});
  }
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    check_conv_case(cases[i], rng, i % 2 == 0);
  }
}

TEST_CASE("Conv results are bit-identical for any thread count") {
  std::mt19937 rng(11);
  // Large enough for several im2col tiles, groups and batches.
  const tensor x = random_tensor<float>({2, 8, 40, 40}, rng);
  const tensor w = random_tensor<float>({16, 4, 3, 3}, rng);
  const tensor wd = random_tensor<float>({8, 1, 3, 3}, rng);
  const tensor w1 = random_tensor<float>({16, 8, 1, 1}, rng);
  for (int kind = 0; kind < 3; ++kind) {
    CAPTURE(kind);
    node_runner conv{"Conv"};
    conv.int_attrs["group"] = kind == 0 ? 2 : (kind == 1 ? 8 : 1);
    if (kind < 2) conv.ints["pads"] = {1, 1, 1, 1};
    const tensor& wk = kind == 0 ? w : (kind == 1 ? wd : w1);
    const tensor bk = random_tensor<float>({wk.shape()[0]}, rng);
    const auto one = conv.run({&x, &wk, &bk}, 1, 1);
    for (int threads : {2, 3, 8}) {
      const auto many = conv.run({&x, &wk, &bk}, 1, threads);
      REQUIRE(many[0].nbytes() == one[0].nbytes());
      CHECK(std::memcmp(many[0].bytes(), one[0].bytes(), one[0].nbytes()) == 0);
    }
  }
}

TEST_CASE("Conv errors name the node and the problem") {
  const tensor x(quench::dtype::float32, {1, 3, 5, 5});
  const tensor w(quench::dtype::float32, {4, 2, 3, 3});
  node_runner conv{"Conv"};
  CHECK_THROWS_WITH(conv.run({&x, &w}), doctest::Contains("node 'n0' (Conv)"));
  CHECK_THROWS_WITH(conv.run({&x, &w}), doctest::Contains("X channels = W.shape[1] * group"));
  const tensor w3(quench::dtype::float32, {4, 3, 7, 7});
  CHECK_THROWS_WITH(conv.run({&x, &w3}), doctest::Contains("smaller than the dilated kernel"));
  const tensor wok(quench::dtype::float32, {4, 3, 3, 3});
  const tensor bad_bias(quench::dtype::float32, {3});
  CHECK_THROWS_WITH(conv.run({&x, &wok, &bad_bias}), doctest::Contains("B of shape [4]"));
  const tensor x2(quench::dtype::float32, {3, 5});
  CHECK_THROWS_WITH(conv.run({&x2, &wok}), doctest::Contains("only 1-D, 2-D and 3-D"));
  node_runner padded{"Conv"};
  padded.ints["pads"] = {1, 1};
  CHECK_THROWS_WITH(padded.run({&x, &wok}), doctest::Contains("pads has 2 values for 2 spatial axes"));
  node_runner wrong{"Conv"};
  wrong.string_attrs["auto_pad"] = "SAME";
  const auto problems = rt::check(wrong.build({&x, &wok}, 1));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("auto_pad='SAME'") != std::string::npos);
  node_runner ks{"Conv"};
  ks.ints["kernel_shape"] = {2, 2};
  CHECK_THROWS_WITH(ks.run({&x, &wok}), doctest::Contains("kernel_shape [2, 2] to match W"));
}

namespace {

/// ConvTranspose by its definition: scatter every input value times the kernel, then crop.
std::vector<double> reference_conv_transpose(const tensor& x, const tensor& w, std::int64_t group, const std::vector<std::int64_t>& stride,
                                             const std::vector<std::int64_t>& dilation, const std::vector<std::int64_t>& pad_begin,
                                             const std::vector<std::int64_t>& out) {
  const auto& xs = x.shape();
  const auto& ws = w.shape();
  const std::size_t r = xs.rank() - 2;
  const std::int64_t n_batch = xs[0], c = xs[1], cg = c / group, mg = ws[1], m_total = mg * group;
  std::int64_t pin = 1, pout = 1, ks = 1;
  for (std::size_t i = 0; i < r; ++i) {
    pin *= xs[2 + i];
    pout *= out[i];
    ks *= ws[2 + i];
  }
  std::vector<double> y(static_cast<std::size_t>(n_batch * m_total * pout), 0.0);
  const auto xv = x.view<float>();
  const auto wv = w.view<float>();
  std::vector<std::int64_t> ip(r), k(r);
  for (std::int64_t n = 0; n < n_batch; ++n)
    for (std::int64_t ci = 0; ci < c; ++ci)
      for (std::int64_t p = 0; p < pin; ++p) {
        std::int64_t rest = p;
        for (std::size_t d = r; d-- > 0;) {
          ip[d] = rest % xs[2 + d];
          rest /= xs[2 + d];
        }
        const double xval = xv[static_cast<std::size_t>((n * c + ci) * pin + p)];
        const std::int64_t g = ci / cg;
        for (std::int64_t mi = 0; mi < mg; ++mi)
          for (std::int64_t q = 0; q < ks; ++q) {
            std::int64_t kr = q, idx = 0;
            for (std::size_t d = r; d-- > 0;) {
              k[d] = kr % ws[2 + d];
              kr /= ws[2 + d];
            }
            bool inside = true;
            for (std::size_t d = 0; d < r; ++d) {
              const std::int64_t pos = ip[d] * stride[d] + k[d] * dilation[d] - pad_begin[d];
              inside = inside && pos >= 0 && pos < out[d];
              idx = idx * out[d] + pos;
            }
            if (!inside) continue;
            y[static_cast<std::size_t>((n * m_total + g * mg + mi) * pout + idx)] += xval * wv[static_cast<std::size_t>((ci * mg + mi) * ks + q)];
          }
      }
  return y;
}

}  // namespace

TEST_CASE("ConvTranspose: the ONNX example and a scatter reference") {
  // onnx/backend/test/case/node/convtranspose.py, export(): x 0..8, W ones (2 output channels).
  const tensor x = tensor::from<float>({1, 1, 3, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8});
  tensor w(quench::dtype::float32, {1, 2, 3, 3});
  for (auto& v : w.view<float>()) v = 1.f;
  node_runner ct{"ConvTranspose"};
  const auto y = ct.run({&x, &w});
  REQUIRE(y[0].shape() == quench::shape{1, 2, 5, 5});
  const std::vector<float> row0{0, 1, 3, 3, 2}, row2{9, 21, 36, 27, 15};
  for (int c = 0; c < 2; ++c)
    for (int j = 0; j < 5; ++j) {
      CHECK(y[0].view<float>()[static_cast<std::size_t>(c * 25 + j)] == row0[static_cast<std::size_t>(j)]);
      CHECK(y[0].view<float>()[static_cast<std::size_t>(c * 25 + 10 + j)] == row2[static_cast<std::size_t>(j)]);
    }

  std::mt19937 rng(3);
  struct tc {
    std::vector<std::int64_t> xs, ws, stride, dilation, pads, out_pad;
    std::int64_t group;
  };
  const std::vector<tc> cases = {
      {{1, 2, 4, 5}, {2, 3, 3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 1},
      {{2, 4, 3, 3}, {4, 2, 2, 3}, {3, 2}, {1, 2}, {0, 1, 2, 0}, {0, 1}, 2},
      {{1, 3, 5}, {3, 2, 4}, {2}, {2}, {1, 0}, {1}, 1},
      {{1, 2, 3, 2, 3}, {2, 2, 2, 2, 2}, {2, 1, 2}, {1, 1, 1}, {0, 0, 1, 1, 0, 0}, {1, 0, 0}, 2},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(i);
    const auto& c = cases[i];
    const tensor xi = random_tensor<float>(quench::shape(c.xs), rng);
    const tensor wi = random_tensor<float>(quench::shape(c.ws), rng);
    node_runner t{"ConvTranspose"};
    t.ints["strides"] = c.stride;
    t.ints["dilations"] = c.dilation;
    t.ints["pads"] = c.pads;
    t.ints["output_padding"] = c.out_pad;
    t.int_attrs["group"] = c.group;
    const std::size_t r = c.xs.size() - 2;
    std::vector<std::int64_t> out(r), pb(r);
    for (std::size_t d = 0; d < r; ++d) {
      out[d] = c.stride[d] * (c.xs[2 + d] - 1) + c.out_pad[d] + (c.ws[2 + d] - 1) * c.dilation[d] + 1 - c.pads[d] - c.pads[d + r];
      pb[d] = c.pads[d];
    }
    const auto got = t.run({&xi, &wi});
    const auto want = reference_conv_transpose(xi, wi, c.group, c.stride, c.dilation, pb, out);
    REQUIRE(got[0].size() == want.size());
    std::size_t bad = 0;
    for (std::size_t j = 0; j < want.size(); ++j)
      if (std::fabs(got[0].view<float>()[j] - want[j]) > 1e-5 + 1e-5 * std::fabs(want[j])) ++bad;
    CHECK(bad == 0);
    // Threads split output-channel tiles only: bit-identical.
    const auto many = t.run({&xi, &wi}, 1, 3);
    CHECK(std::memcmp(many[0].bytes(), got[0].bytes(), got[0].nbytes()) == 0);
  }
}

TEST_CASE("ConvTranspose output_shape and auto_pad follow the ONNX formulas") {
  const tensor x = tensor::from<float>({1, 1, 3, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8});
  tensor w(quench::dtype::float32, {1, 1, 3, 3});
  for (auto& v : w.view<float>()) v = 1.f;
  node_runner t{"ConvTranspose"};
  t.ints["strides"] = {2, 2};
  t.string_attrs["auto_pad"] = "SAME_UPPER";
  // Full result 7 x 7, output 6 x 6: SAME_UPPER drops the last row and column.
  auto y = t.run({&x, &w});
  REQUIRE(y[0].shape() == quench::shape{1, 1, 6, 6});
  CHECK(y[0].view<float>()[0] == 0.f);
  CHECK(y[0].view<float>()[5] == 2.f);  // full[0][5]: x[0][2] only
  t.string_attrs["auto_pad"] = "SAME_LOWER";
  y = t.run({&x, &w});
  CHECK(y[0].view<float>()[0] == 0.f);  // full[1][1]: x[0][0] only
  CHECK(y[0].view<float>()[1] == 1.f);  // full[1][2]: x[0][0] + x[0][1]

  // output_shape larger than the full result: the extra row/column gets only the bias.
  node_runner big{"ConvTranspose"};
  big.ints["strides"] = {2, 2};
  big.ints["output_shape"] = {8, 8};
  const tensor b = tensor::from<float>({1}, {0.25f});
  y = big.run({&x, &w, &b});
  REQUIRE(y[0].shape() == quench::shape{1, 1, 8, 8});
  CHECK(y[0].view<float>()[7] == 0.25f);
  CHECK(y[0].view<float>()[63] == 0.25f);
  CHECK(y[0].view<float>()[6] == 2.25f);

  node_runner bad{"ConvTranspose"};
  bad.ints["output_padding"] = {1, 1};
  CHECK_THROWS_WITH(bad.run({&x, &w}), doctest::Contains("output_padding [1, 1] must be smaller than the stride"));
  const tensor wrong(quench::dtype::float32, {2, 1, 3, 3});
  CHECK_THROWS_WITH(t.run({&x, &wrong}), doctest::Contains("W.shape[0] = X channels"));
}

TEST_CASE("ConvInteger and QLinearConv accumulate exactly and requantize like ONNX Runtime") {
  // x - x_zp and w - w_zp per output channel; padding reads the zero point (contributes 0).
  const tensor x = tensor::from<std::uint8_t>({1, 1, 3, 3}, {2, 3, 4, 5, 6, 7, 8, 9, 10});
  const tensor xzp = tensor::from<std::uint8_t>({}, {1});
  const tensor w = tensor::from<std::uint8_t>({2, 1, 2, 2}, {1, 1, 1, 1, 2, 0, 0, 2});
  const tensor wzp = tensor::from<std::uint8_t>({2}, {0, 1});
  node_runner ci{"ConvInteger", 10};
  ci.ints["pads"] = {0, 0, 1, 1};
  const auto y = ci.run({&x, &w, &xzp, &wzp});
  REQUIRE(y[0].dtype() == quench::dtype::int32);
  REQUIRE(y[0].shape() == quench::shape{1, 2, 3, 3});
  // Channel 0, position (0,0): (1+2+4+5) = 12; position (2,2): only x[2][2]-1 = 9 inside.
  CHECK(y[0].view<std::int32_t>()[0] == 12);
  CHECK(y[0].view<std::int32_t>()[8] == 9);
  // Channel 1 (w - 1 = [1,-1,-1,1]): (0,0) -> 1 - 2 - 4 + 5 = 0; (2,2) -> 9 * 1.
  CHECK(y[0].view<std::int32_t>()[9] == 0);
  CHECK(y[0].view<std::int32_t>()[17] == 9);

  // QLinearConv: onnx test_qlinearconv style, 1x1 kernel, w = 0 with w_zp 255 -> w - zp = -255.
  const tensor qx = tensor::from<std::uint8_t>({1, 1, 1, 3}, {255, 174, 132});
  const tensor x_scale = tensor::from<float>({}, {0.00369204697f});
  const tensor x_zp = tensor::from<std::uint8_t>({}, {132});
  const tensor qw = tensor::from<std::uint8_t>({1, 1, 1, 1}, {0});
  const tensor w_scale = tensor::from<float>({1}, {0.00172794575f});
  const tensor w_zp = tensor::from<std::uint8_t>({1}, {255});
  const tensor y_scale = tensor::from<float>({}, {0.00162681262f});
  const tensor y_zp = tensor::from<std::uint8_t>({}, {123});
  node_runner ql{"QLinearConv", 10};
  const auto q = ql.run({&qx, &x_scale, &x_zp, &qw, &w_scale, &w_zp, &y_scale, &y_zp});
  REQUIRE(q[0].dtype() == quench::dtype::uint8);
  // The same three values appear in the ONNX test's expected output (0, 81, 123).
  CHECK(q[0].view<std::uint8_t>()[0] == 0);
  CHECK(q[0].view<std::uint8_t>()[1] == 81);
  CHECK(q[0].view<std::uint8_t>()[2] == 123);

  const tensor bad_scale = tensor::from<float>({}, {0.f});
  CHECK_THROWS_WITH(ql.run({&qx, &bad_scale, &x_zp, &qw, &w_scale, &w_zp, &y_scale, &y_zp}), doctest::Contains("x_scale: scales must be finite and > 0"));
  const tensor i8zp = tensor::from<std::int8_t>({}, {0});
  CHECK_THROWS_WITH(ql.run({&qx, &x_scale, &i8zp, &qw, &w_scale, &w_zp, &y_scale, &y_zp}), doctest::Contains("x zero point: expected uint8"));
}
