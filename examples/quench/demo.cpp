// quench demo TENSOR.npy: converts a float32 tensor (the quick start uses the bundled 3x3 conv
// weights examples/data/conv_weights.npy) to every format quench has, converts it back, and
// reports size and error, so a user sees in one table what each format costs in accuracy.
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "quench/adapt/npy.hpp"
#include "quench/numeric/convert.hpp"
#include "quench/numeric/cpu.hpp"
#include "quench/quant/choose_qparams.hpp"
#include "quench/quant/dequantize.hpp"
#include "quench/quant/quantize.hpp"

namespace quench_cli {
namespace {

struct error_stats {
  double max_abs = 0;
  double sqnr_db = 0;  ///< 10 log10(signal power / noise power)
};

error_stats compare(const quench::tensor& ref, const std::vector<float>& back) {
  const auto r = ref.view<float>();
  double signal = 0, noise = 0, max_abs = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    const double e = static_cast<double>(back[i]) - r[i];
    signal += static_cast<double>(r[i]) * r[i];
    noise += e * e;
    max_abs = std::max(max_abs, std::fabs(e));
  }
  return {max_abs, noise > 0 ? 10.0 * std::log10(signal / noise) : INFINITY};
}

template <class Half>
std::vector<float> via_float(const quench::tensor& x) {
  const auto v = x.view<float>();
  std::vector<Half> h(v.size());
  std::vector<float> back(v.size());
  quench::convert(v.data(), h.data(), v.size());
  quench::convert(h.data(), back.data(), v.size());
  return back;
}

template <class Float8>
std::vector<float> via_float8(const quench::tensor& x) {
  const auto v = x.view<float>();
  std::vector<Float8> h(v.size());
  std::vector<float> back(v.size());
  quench::convert(v.data(), h.data(), v.size(), /*saturate=*/true);
  quench::convert(h.data(), back.data(), v.size());
  return back;
}

std::vector<float> via_quant(const quench::tensor& x, const quench::qparams& p) {
  const quench::tensor q = quench::quantize(x, p);
  const quench::tensor back = quench::dequantize(q, p);
  const auto b = back.view<float>();
  return std::vector<float>(b.begin(), b.end());
}

int run_demo(const std::string& path) {
  const quench::tensor w = quench::read_npy(path);
  if (w.dtype() != quench::dtype::float32)
    throw quench::error(quench::errc::dtype_mismatch, "'" + path + "'",
                        "expected a float32 array, found " + quench::to_string(w.dtype()));
  const std::size_t n = w.size();
  std::printf("quench demo: %s, float32 %s, %zu values, %zu bytes; SIMD target: %s\n\n", path.c_str(),
              quench::to_string(w.shape()).c_str(), n, w.nbytes(),
              std::string(quench::simd_target_name(quench::best_simd_target())).c_str());

  quench::range_options symmetric;
  symmetric.symmetric = true;
  struct row {
    const char* name;
    double bits;  ///< bits per value including the scales, amortised
    std::function<std::vector<float>()> run;
  };
  const double channels = w.rank() > 0 ? static_cast<double>(w.shape()[0]) : 1.0;
  const std::vector<row> rows = {
      {"float16", 16, [&] { return via_float<quench::float16>(w); }},
      {"bfloat16", 16, [&] { return via_float<quench::bfloat16>(w); }},
      {"float8e4m3fn", 8, [&] { return via_float8<quench::float8e4m3fn>(w); }},
      {"float8e5m2", 8, [&] { return via_float8<quench::float8e5m2>(w); }},
      {"uint8 asym, per tensor", 8 + 40.0 / n,
       [&] { return via_quant(w, quench::qparams_from_data(w.view<float>(), quench::dtype::uint8)); }},
      {"int8 sym, per tensor", 8 + 32.0 / n,
       [&] { return via_quant(w, quench::qparams_from_data(w.view<float>(), quench::dtype::int8, symmetric)); }},
      {"int8 sym, per channel", 8 + 32.0 * channels / n,
       [&] { return via_quant(w, quench::qparams_from_data(w.view<float>(), quench::dtype::int8, 0, symmetric)); }},
      {"int4 sym, per channel", 4 + 32.0 * channels / n,
       [&] { return via_quant(w, quench::qparams_from_data(w.view<float>(), quench::dtype::int4, 0, symmetric)); }},
  };
  std::printf("%-24s %10s %8s %12s %10s\n", "format", "bytes", "ratio", "max |err|", "SQNR dB");
  for (const row& r : rows) {
    const error_stats e = compare(w, r.run());
    const double bytes = r.bits * static_cast<double>(n) / 8.0;
    std::printf("%-24s %10.0f %7.2fx %12.3g %10.2f\n", r.name, bytes, static_cast<double>(w.nbytes()) / bytes,
                e.max_abs, e.sqnr_db);
  }
  std::printf("\nPer-channel scales follow each output channel's own range; with channel ranges that differ\n"
              "as much as these, per-tensor int8 loses several dB that per-channel keeps.\n");
  return 0;
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("demo", "Convert a float32 .npy tensor to every format and report size and error");
  static std::string path;
  cmd->add_option("tensor", path, "float32 .npy file (e.g. examples/data/conv_weights.npy)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->callback([] { run_demo(path); });
}

}  // namespace quench_cli
