#pragma once
// checked_source: every sample checked against what the model expects before it reaches the
// model: the graph input is there, dtype, shape of one sample, no NaN/Inf in float data. A bad
// sample is an error naming its file and what is wrong; with `skip_bad` the bad samples are found
// up front, skipped and listed (skipped()), never silently dropped.
//
//     quench::data::checked_options o;
//     o.inputs = {{"input", quench::dtype::float32, {3, 224, 224}}};   // -1: any size
//     o.skip_bad = true;
//     quench::data::checked_source src(std::move(files_source), o);
//     for (const auto& s : src.skipped()) std::fprintf(stderr, "skipped %s\n", s.c_str());
//
// With skip_bad the constructor reads every sample once, one at a time (the inner source's
// errors, e.g. a truncated file, count as bad samples too), so that size() and the sample
// indices are fixed before calibration starts: shards and resumed runs see the same samples.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quench/data/sample_source.hpp"
#include "quench/data/subset_source.hpp"

namespace quench::data {

/// What one graph input takes: dtype (undefined: any) and the shape of one sample, without the
/// batch axis (-1: any size; empty with `any_rank`: any shape).
struct input_spec {
  std::string name;
  dtype type = dtype::undefined;
  std::vector<std::int64_t> sample_dims;
  bool any_rank = false;
};

struct checked_options {
  std::vector<input_spec> inputs;  ///< every input the model needs; extra inputs in the data are errors
  bool finite = true;              ///< NaN or Inf in float data is bad
  bool skip_bad = false;
};

namespace detail {
inline bool all_finite(const tensor& t) noexcept {
  switch (t.dtype()) {
    case dtype::float32: {
      const float* p = reinterpret_cast<const float*>(t.bytes());
      bool ok = true;
      for (std::size_t i = 0; i < t.size(); ++i) ok &= std::isfinite(p[i]);  // no early exit: vectorizes
      return ok;
    }
    case dtype::float64: {
      const double* p = reinterpret_cast<const double*>(t.bytes());
      bool ok = true;
      for (std::size_t i = 0; i < t.size(); ++i) ok &= std::isfinite(p[i]);
      return ok;
    }
    case dtype::float16:
    case dtype::bfloat16: {
      const std::uint16_t exp = t.dtype() == dtype::float16 ? 0x7c00 : 0x7f80;
      const auto* p = reinterpret_cast<const std::uint16_t*>(t.bytes());
      bool ok = true;
      for (std::size_t i = 0; i < t.size(); ++i) ok &= (p[i] & exp) != exp;
      return ok;
    }
    default: return true;
  }
}

/// First non-finite element of sample k of t: "NaN at element 17" / "Inf at element 3".
inline std::string first_non_finite(const tensor& t, std::int64_t k, std::int64_t count) {
  const std::size_t per = t.size() / static_cast<std::size_t>(count);
  for (std::size_t i = 0; i < per; ++i) {
    const std::size_t j = static_cast<std::size_t>(k) * per + i;
    double v = 0;
    if (t.dtype() == dtype::float32) v = reinterpret_cast<const float*>(t.bytes())[j];
    else if (t.dtype() == dtype::float64) v = reinterpret_cast<const double*>(t.bytes())[j];
    else {
      const std::uint16_t b = reinterpret_cast<const std::uint16_t*>(t.bytes())[j];
      const bool h = t.dtype() == dtype::float16;
      const std::uint16_t exp = h ? 0x7c00 : 0x7f80, man = h ? 0x03ff : 0x007f;
      if ((b & exp) != exp) continue;
      v = (b & man) ? NAN : INFINITY;
    }
    if (!std::isfinite(v)) return std::string(std::isnan(v) ? "NaN" : "Inf") + " at element " + std::to_string(i) + " of the sample";
  }
  return {};
}
}  // namespace detail

class checked_source final : public sample_source {
 public:
  checked_source(std::unique_ptr<sample_source> inner, checked_options o) : inner_(std::move(inner)), o_(std::move(o)) {
    if (!inner_) throw_error(errc::invalid_argument, "checked_source", "needs a source");
    if (!o_.skip_bad) return;
    const std::int64_t n = inner_->size();
    for (std::int64_t i = 0; i < n; ++i) {
      try {
        batch b = inner_->read(i, 1);
        check(b, i, 1);
        good_.push_back(i);
      } catch (const error& e) {
        skipped_.push_back(e.what());
      }
    }
    if (good_.empty())
      throw_error(errc::invalid_argument, "--skip-bad", "every one of the " + std::to_string(n) + " samples is bad; the first: " +
                                                            (skipped_.empty() ? std::string() : skipped_[0]));
  }

  std::int64_t size() const override { return o_.skip_bad ? static_cast<std::int64_t>(good_.size()) : inner_->size(); }
  std::string sample_name(std::int64_t i) const override { return inner_->sample_name(o_.skip_bad ? good_[static_cast<std::size_t>(i)] : i); }

  batch read(std::int64_t first, std::int64_t count) override {
    detail::check_range(*this, first, count);
    if (!o_.skip_bad) {
      batch b = inner_->read(first, count);
      check(b, first, count);
      return b;
    }
    batch b = detail::gather(*inner_, good_.data() + first, count);
    check(b, -1, count, good_.data() + first);
    return b;
  }

  /// One message per skipped sample (`[quench.not_finite] 'x/17.npy': NaN at element 3 ...`).
  const std::vector<std::string>& skipped() const noexcept { return skipped_; }

 private:
  /// Checks samples [first, first + count) of the inner source (or indices[k] when given).
  void check(const batch& b, std::int64_t first, std::int64_t count, const std::int64_t* indices = nullptr) const {
    auto name_of = [&](std::int64_t k) { return inner_->sample_name(indices ? indices[k] : first + k); };
    for (const auto& [name, t] : b) {
      const input_spec* spec = nullptr;
      for (const auto& s : o_.inputs)
        if (s.name == name) spec = &s;
      if (!spec && !o_.inputs.empty()) {
        std::string all;
        for (const auto& s : o_.inputs) all += (all.empty() ? "'" : ", '") + s.name + "'";
        throw_error(errc::invalid_argument, name_of(0), "feeds '" + name + "', which is not a graph input; the model takes " + all);
      }
      if (!spec) continue;
      const std::string ctx = name_of(0) + " (input '" + name + "')";
      if (spec->type != dtype::undefined && t.dtype() != spec->type)
        throw_error(errc::dtype_mismatch, ctx, "expected " + to_string(spec->type) + " for the model input, found " + to_string(t.dtype()));
      if (!spec->any_rank) {
        bool ok = t.rank() == spec->sample_dims.size() + 1;
        for (std::size_t d = 0; ok && d < spec->sample_dims.size(); ++d)
          ok = spec->sample_dims[d] < 0 || spec->sample_dims[d] == t.shape()[d + 1];
        if (!ok) {
          std::string want = "[";
          for (std::size_t d = 0; d < spec->sample_dims.size(); ++d)
            want += (d ? ", " : "") + (spec->sample_dims[d] < 0 ? std::string("?") : std::to_string(spec->sample_dims[d]));
          std::vector<std::int64_t> got(t.shape().begin(), t.shape().end());
          if (!got.empty()) got.erase(got.begin());
          throw_shape_mismatch(ctx, "samples of shape " + want + "] for the model input", to_string(shape(got)));
        }
      }
      if (o_.finite && !detail::all_finite(t))
        for (std::int64_t k = 0; k < count; ++k) {
          const std::string what = detail::first_non_finite(t, k, count);
          if (!what.empty()) throw_error(errc::not_finite, name_of(k) + " (input '" + name + "')", what);
        }
    }
    for (const auto& s : o_.inputs) {
      bool found = false;
      for (const auto& [name, t] : b) found = found || name == s.name;
      if (!found) throw_error(errc::invalid_argument, name_of(0), "gives no data for the graph input '" + s.name + "'");
    }
  }

  std::unique_ptr<sample_source> inner_;
  checked_options o_;
  std::vector<std::int64_t> good_;
  std::vector<std::string> skipped_;
};

}  // namespace quench::data
