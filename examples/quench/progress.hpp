#pragma once
// The progress bar of the commands that run data through a model (calibrate, quantize).

#include <cstdio>
#include <string>

#include "quench/calib/calibrate.hpp"

namespace quench_cli {

/// A one-line progress bar on stderr: samples, samples/s and ETA.
inline void show_progress(const quench::calib::calibrate_progress& p) {
  const double rate = p.seconds > 0 ? static_cast<double>(p.samples_done) / p.seconds : 0;
  const double eta = rate > 0 ? static_cast<double>(p.samples_total - p.samples_done) / rate : 0;
  const int width = 30;
  const int filled = p.samples_total ? static_cast<int>(width * p.samples_done / p.samples_total) : width;
  std::fprintf(stderr, "\r[%s%s] %lld/%lld samples  %.1f samples/s  ETA %.0fs ", std::string(static_cast<std::size_t>(filled), '#').c_str(),
               std::string(static_cast<std::size_t>(width - filled), '.').c_str(), static_cast<long long>(p.samples_done),
               static_cast<long long>(p.samples_total), rate, eta);
  if (p.samples_done == p.samples_total) std::fprintf(stderr, "\n");
}

}  // namespace quench_cli
