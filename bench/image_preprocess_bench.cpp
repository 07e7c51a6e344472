// Image decoding and preprocessing against python3-opencv in the same run
// (bench/image_cv2_bench.py, one thread): a 640x480 JPEG decoded (same libjpeg-turbo, so the
// ratio shows the overhead around it), then resized to 224x224 INTER_LINEAR (OpenCV's SIMD
// against quench's scalar fixed-point loop with the same arithmetic), then the float32 ImageNet
// normalization into NCHW; the two resizes alone (INTER_LINEAR, INTER_AREA). Counters: quench_ms, cv2_ms, speedup_vs_cv2 (> 1: quench faster).
//
//     build/bin/quench_image_preprocess_bench
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "bench_util.hpp"
#include "quench/calib/detail/json.hpp"
#include "quench/data/image_decode.hpp"
#include "quench/data/preprocess.hpp"

namespace {

struct cv2_times {
  double decode = 0, resize = 0, resize_area = 0, decode_resize = 0, pipeline = 0;
  std::string file;
};

const cv2_times& cv2_baseline() {
  static const cv2_times t = [] {
    cv2_times r;
    const std::string dir = (std::filesystem::temp_directory_path() / "quench_image_bench").string();
    const std::string out = quench_bench::run_child("/usr/bin/python3 '" + std::string(QUENCH_SOURCE_DIR) +
                                                    "/bench/image_cv2_bench.py' '" + dir + "' 2>/dev/null");
    if (out.empty()) return r;
    const auto j = quench::detail::parse_json(out, "image_cv2_bench");
    r.decode = j.at("decode", "b").as_double("b");
    r.resize = j.at("resize", "b").as_double("b");
    r.resize_area = j.at("resize_area", "b").as_double("b");
    r.decode_resize = j.at("decode_resize", "b").as_double("b");
    r.pipeline = j.at("pipeline", "b").as_double("b");
    r.file = dir + "/bench.jpg";
    return r;
  }();
  return t;
}

template <class Fn>
double time_loop(benchmark::State& state, Fn&& fn) {
  double best = 1e30;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    benchmark::ClobberMemory();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void report(benchmark::State& state, double quench_s, double cv2_s) {
  state.counters["quench_ms"] = quench_s * 1e3;
  state.counters["cv2_ms"] = cv2_s * 1e3;
  state.counters["speedup_vs_cv2"] = cv2_s / quench_s;
}

void decode(benchmark::State& state) {
  const cv2_times& b = cv2_baseline();
  if (b.file.empty()) return state.SkipWithError("python3-opencv baseline unavailable");
  const double s = time_loop(state, [&] { benchmark::DoNotOptimize(quench::data::decode_image(b.file).pixels.data()); });
  report(state, s, b.decode);
}

void resize_only(benchmark::State& state, quench::data::interpolation interp) {
  const cv2_times& b = cv2_baseline();
  if (b.file.empty()) return state.SkipWithError("python3-opencv baseline unavailable");
  const quench::data::image img = quench::data::decode_image(b.file);
  std::vector<std::uint8_t> out(224 * 224 * 3);
  const double s = time_loop(state, [&] {
    quench::data::resize(img.pixels.data(), img.height, img.width, 3, out.data(), 224, 224, interp);
    benchmark::DoNotOptimize(out.data());
  });
  report(state, s, interp == quench::data::interpolation::linear ? b.resize : b.resize_area);
}
void resize_linear(benchmark::State& state) { resize_only(state, quench::data::interpolation::linear); }
void resize_area(benchmark::State& state) { resize_only(state, quench::data::interpolation::area); }

void decode_resize(benchmark::State& state) {
  const cv2_times& b = cv2_baseline();
  if (b.file.empty()) return state.SkipWithError("python3-opencv baseline unavailable");
  std::vector<std::uint8_t> out(224 * 224 * 3);
  const double s = time_loop(state, [&] {
    const quench::data::image img = quench::data::decode_image(b.file);
    quench::data::resize(img.pixels.data(), img.height, img.width, 3, out.data(), 224, 224, quench::data::interpolation::linear);
    benchmark::DoNotOptimize(out.data());
  });
  report(state, s, b.decode_resize);
}

void pipeline(benchmark::State& state) {
  const cv2_times& b = cv2_baseline();
  if (b.file.empty()) return state.SkipWithError("python3-opencv baseline unavailable");
  quench::data::preprocess_options o;
  o.mean = {0.485f, 0.456f, 0.406f};
  o.std = {0.229f, 0.224f, 0.225f};
  const double s = time_loop(state, [&] {
    const quench::tensor t = quench::data::preprocess(quench::data::decode_image(b.file), o, "bench");
    benchmark::DoNotOptimize(t.bytes());
  });
  report(state, s, b.pipeline);
}

}  // namespace

BENCHMARK(decode)->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(resize_linear)->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(resize_area)->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(decode_resize)->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK(pipeline)->Unit(benchmark::kMillisecond)->MinTime(0.5);
BENCHMARK_MAIN();
