#pragma once
// calibrate: runs a model on calibration data with the reference executor and feeds every float
// tensor it computes into an observer, then turns the observers into ranges with the chosen method.
//
//     quench::data::npy_source data({{"input", "calib.npy"}});
//     quench::calib::calibrate_options opt;
//     opt.method = quench::calib::method::entropy;
//     auto result = quench::calib::calibrate(model, data, opt);
//     std::string cache = quench::calib::write_tensorrt_cache(result.table);
//
// Two steps, usable apart: collect() produces a calibration_state (observers only, JSON-able and
// exactly mergeable: calibrating shard K of N with `shard_index` / `shard_count` and merging the
// N states gives the state of one pass), and compute_ranges() turns any state into a table. The
// method and its parameters travel in the state's metadata, so a merged state needs nothing else.
//
// Which observer: minmax for method::minmax (plain or moving average); the order-independent
// histogram_observer for entropy (signed histogram, ONNX Runtime's KL search), percentile (|x|
// histogram when symmetric, ONNX Runtime's cut) and mse (|x| histogram, pytorch-quantization's
// search). Memory stays one batch of activations plus the observers: each batch is run, observed
// and released.

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "quench/calib/calibration_state.hpp"
#include "quench/calib/calibration_table.hpp"
#include "quench/calib/entropy.hpp"
#include "quench/calib/max_range.hpp"
#include "quench/calib/mse.hpp"
#include "quench/calib/percentile.hpp"
#include "quench/core/error.hpp"
#include "quench/data/sample_source.hpp"
#include "quench/graph/model.hpp"
#include "quench/runtime/executor.hpp"

namespace quench::calib {

enum class method { minmax, entropy, percentile, mse };

inline std::string method_name(method m) {
  switch (m) {
    case method::minmax: return "minmax";
    case method::entropy: return "entropy";
    case method::percentile: return "percentile";
    case method::mse: return "mse";
  }
  return "unknown";
}

inline method parse_method(const std::string& s) {
  if (s == "minmax" || s == "max") return method::minmax;
  if (s == "entropy" || s == "kl") return method::entropy;
  if (s == "percentile") return method::percentile;
  if (s == "mse") return method::mse;
  throw_error(errc::invalid_argument, "calibration method", "expected minmax, entropy, percentile or mse, found '" + s + "'");
}

struct calibrate_progress {
  std::int64_t samples_done = 0, samples_total = 0;
  double seconds = 0;  ///< since collection started
};

struct calibrate_options {
  calib::method method = method::minmax;
  std::int64_t batch_size = 8;  ///< samples per run (a model with a fixed batch dimension uses its own)
  /// Per-channel activation ranges along axis 1 (NCHW channels); per tensor otherwise.
  bool per_channel = false;
  // minmax
  bool symmetric = false;  ///< minmax: (-m, m); percentile: histogram of |x| and a symmetric cut
  bool moving_average = false;
  double averaging_constant = 0.01;
  // histogram methods
  std::size_t num_bins = 2048;
  std::size_t num_quantized_bins = 128;  ///< entropy (ONNX Runtime's parameter)
  double percentile = 99.999;
  int num_bits = 8;  ///< mse
  /// This process calibrates samples [K * S / N, (K + 1) * S / N) of S.
  int shard_index = 0, shard_count = 1;
  /// Tensors to observe; empty: every float graph input and every float tensor a node computes.
  std::vector<std::string> tensors;
  std::function<void(const calibrate_progress&)> progress;
  runtime::executor_options executor;
  /// Feed the observers on a second thread while the executor runs on (results are identical:
  /// each observer still sees its batches in order). Activations wait for their observer at most
  /// up to `observer_backlog_bytes`, then the executor waits.
  bool observer_thread = true;
  std::size_t observer_backlog_bytes = std::size_t{256} << 20;
};

namespace detail {

inline bool is_float_dtype(dtype t) {
  return t == dtype::float32 || t == dtype::float16 || t == dtype::bfloat16 || t == dtype::float64;
}

inline any_observer make_observer(const std::string& name, const calibrate_options& o) {
  const std::optional<std::int64_t> axis = o.per_channel ? std::optional<std::int64_t>(1) : std::nullopt;
  if (o.method == method::minmax) {
    minmax_options m;
    m.symmetric = o.symmetric;
    m.moving_average = o.moving_average;
    m.averaging_constant = o.averaging_constant;
    m.axis = axis;
    return minmax_observer(name, m);
  }
  histogram_options h;
  h.num_bins = o.num_bins;
  h.absolute = o.method == method::mse || (o.method == method::percentile && o.symmetric);
  h.axis = axis;
  return histogram_observer(name, h);
}

/// The shortest decimal text that reads back as exactly `v`.
inline std::string number_text(double v) {
  char buf[40];
  for (int digits = 6; digits <= 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

/// The options a state was collected with (its metadata), for compute_ranges on merged states.
inline calibrate_options options_from_metadata(const calibration_state& st) {
  calibrate_options o;
  auto get = [&](const char* key) -> const std::string* {
    auto it = st.metadata().find(key);
    return it == st.metadata().end() ? nullptr : &it->second;
  };
  if (const auto* m = get("method")) o.method = parse_method(*m);
  if (const auto* v = get("symmetric")) o.symmetric = *v == "true";
  if (const auto* v = get("num_quantized_bins")) o.num_quantized_bins = static_cast<std::size_t>(std::stoull(*v));
  if (const auto* v = get("percentile")) o.percentile = std::stod(*v);
  if (const auto* v = get("num_bits")) o.num_bits = std::stoi(*v);
  return o;
}

/// Range of one histogram by the method.
inline range histogram_range(const histogram& h, const calibrate_options& o) {
  switch (o.method) {
    case method::entropy: {
      ort_entropy_options e;
      e.num_quantized_bins = o.num_quantized_bins;
      return ort_entropy_range(h, e);
    }
    case method::percentile: {
      ort_percentile_options p;
      p.percentile = o.percentile;
      p.symmetric = o.symmetric;
      return ort_percentile_range(h, p);
    }
    case method::mse: {
      trt_mse_options m;
      m.num_bits = o.num_bits;
      // pytorch-quantization's amax is symmetric; clamped to the data like the other methods, so
      // non-negative data (after Relu) keeps the whole grid of an asymmetric type.
      const double amax = trt_mse_amax(h, m);
      return {std::max(-amax, h.min), std::min(amax, h.max)};
    }
    case method::minmax: break;
  }
  return max_range(h, o.symmetric);
}

/// Feeds observers, on a worker thread or inline. Queued activations share the executor's
/// storage (tensor::share), which also keeps kernels from overwriting them in place.
class observer_queue {
 public:
  observer_queue(bool threaded, std::size_t backlog_bytes) : backlog_(backlog_bytes) {
    if (threaded) worker_ = std::thread([this] { work(); });
  }
  ~observer_queue() { stop(); }
  observer_queue(const observer_queue&) = delete;
  observer_queue& operator=(const observer_queue&) = delete;

  void observe(any_observer& obs, const tensor& t) {
    if (!worker_.joinable()) {
      calib::observe(obs, t);
      return;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return pending_ < backlog_ || jobs_.empty() || failure_; });
    pending_ += t.nbytes();
    jobs_.push_back({&obs, t.share()});
    ready_.notify_all();
  }

  /// Throws what an observer threw, if anything.
  void rethrow() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (failure_) std::rethrow_exception(failure_);
  }

  /// Waits until every queued activation is observed, then rethrows an observer's error.
  void finish() {
    stop();
    rethrow();
  }

 private:
  struct job {
    any_observer* obs;
    tensor t;
  };

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    ready_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  void work() {
    for (;;) {
      job j;
      bool failed = false;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return !jobs_.empty() || done_; });
        if (jobs_.empty()) return;
        j = std::move(jobs_.front());
        jobs_.pop_front();
        failed = failure_ != nullptr;
      }
      try {
        if (!failed) calib::observe(*j.obs, j.t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!failure_) failure_ = std::current_exception();
      }
      const std::size_t bytes = j.t.nbytes();
      j.t = tensor();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        pending_ -= bytes;
      }
      ready_.notify_all();
    }
  }

  std::size_t backlog_, pending_ = 0;
  std::deque<job> jobs_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::exception_ptr failure_;
  bool done_ = false;
  std::thread worker_;
};

}  // namespace detail

/// Runs the model over this shard's samples and returns the observers' state.
inline calibration_state collect(const model& m, data::sample_source& source, const calibrate_options& opt) {
  if (opt.shard_count < 1 || opt.shard_index < 0 || opt.shard_index >= opt.shard_count)
    throw_error(errc::invalid_argument, "calibrate", "shard " + std::to_string(opt.shard_index) + "/" + std::to_string(opt.shard_count) +
                                                         " is not K/N with 0 <= K < N");
  if (opt.batch_size < 1) throw_error(errc::invalid_argument, "calibrate", "batch size must be >= 1");
  runtime::executor ex(m, opt.executor);
  // A fixed leading dimension of a graph input fixes the batch.
  std::int64_t batch = opt.batch_size;
  for (const std::string& name : ex.required_inputs()) {
    const value* v = m.main_graph().find_value(name);
    if (v && v->dims() && !v->dims()->empty() && (*v->dims())[0].value && *(*v->dims())[0].value > 0)
      batch = *(*v->dims())[0].value;
  }
  const std::int64_t total = source.size();
  const std::int64_t begin = total * opt.shard_index / opt.shard_count, end = total * (opt.shard_index + 1) / opt.shard_count;
  const std::unordered_set<std::string> wanted(opt.tensors.begin(), opt.tensors.end());
  // Only tensors that depend on the data are activations: a Constant's output is computed once
  // per run, so its "distribution" would depend on the number of batches.
  std::unordered_set<std::string> dynamic;
  for (const value* v : m.main_graph().inputs())
    if (!v->is_initializer()) dynamic.insert(v->name());
  for (bool changed = true; changed;) {
    changed = false;
    for (const node* n : m.main_graph().nodes()) {
      bool depends = false;
      for (const value* v : m.main_graph().dependencies(*n)) depends = depends || dynamic.count(v->name());
      if (!depends) continue;
      for (const value* v : n->outputs())
        if (v && dynamic.insert(v->name()).second) changed = true;
    }
  }

  calibration_state st;
  st.metadata()["method"] = method_name(opt.method);
  st.metadata()["symmetric"] = opt.symmetric ? "true" : "false";
  st.metadata()["num_bins"] = std::to_string(opt.num_bins);
  st.metadata()["num_quantized_bins"] = std::to_string(opt.num_quantized_bins);
  st.metadata()["percentile"] = detail::number_text(opt.percentile);
  st.metadata()["num_bits"] = std::to_string(opt.num_bits);
  st.metadata()["per_channel"] = opt.per_channel ? "true" : "false";

  // Observers are made on first sight, in the executor's order; every shard makes the same ones.
  std::unordered_map<std::string, any_observer*> by_name;
  const auto start = std::chrono::steady_clock::now();
  detail::observer_queue queue(opt.observer_thread, opt.observer_backlog_bytes);
  auto watch = [&](const std::string& name, const tensor& t) {
    if (!detail::is_float_dtype(t.dtype()) || t.size() == 0) return;
    if (!wanted.empty() && !wanted.count(name)) return;
    if (!dynamic.count(name)) return;
    auto it = by_name.find(name);
    if (it == by_name.end()) it = by_name.emplace(name, &st.add(detail::make_observer(name, opt))).first;
    queue.observe(*it->second, t);
  };
  for (std::int64_t first = begin; first < end; first += batch) {
    const std::int64_t count = std::min(batch, end - first);
    data::batch b = source.read(first, count);
    std::unordered_map<std::string, const tensor*> feeds;
    for (auto& [name, t] : b) feeds.emplace(name, &t);
    ex.run(feeds, watch);
    queue.rethrow();
    if (opt.progress)
      opt.progress({first + count - begin, end - begin,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
  }
  queue.finish();
  st.metadata()["samples"] = std::to_string(end - begin);
  return st;
}

/// The ranges of every observer of `state` by the method its metadata names.
inline calibration_table compute_ranges(const calibration_state& state) {
  const calibrate_options o = detail::options_from_metadata(state);
  calibration_table table;
  for (const auto& [name, obs] : state.observers()) {
    tensor_calibration t;
    t.name = name;
    t.observer = observer_kind(obs);
    t.method = method_name(o.method);
    t.nonfinite = observer_nonfinite(obs);
    if (const auto* mm = std::get_if<minmax_observer>(&obs)) {
      t.range = mm->overall_range();
      if (mm->options().axis) {
        t.axis = mm->options().axis;
        for (std::size_t c = 0; c < mm->state().min.size(); ++c) t.channels.push_back(mm->range(c));
      }
    } else if (const auto* h = std::get_if<histogram_observer>(&obs)) {
      if (h->channels() == 0) continue;  // never saw a finite value in this state
      if (h->per_channel()) {
        t.axis = h->options().axis;
        for (std::size_t c = 0; c < h->channels(); ++c) t.channels.push_back(detail::histogram_range(h->histogram(c), o));
        t.range = t.channels[0];
        for (const range& r : t.channels) t.range = {std::min(t.range.min, r.min), std::max(t.range.max, r.max)};
      } else {
        t.range = detail::histogram_range(h->histogram(), o);
      }
    } else if (const auto* oh = std::get_if<ort_histogram_observer>(&obs)) {
      t.range = detail::histogram_range(oh->histogram(), o);
    }
    table.add(std::move(t));
  }
  return table;
}

struct calibration_result {
  calibration_state state;
  calibration_table table;
};

/// collect() then compute_ranges().
inline calibration_result calibrate(const model& m, data::sample_source& source, const calibrate_options& opt) {
  calibration_result r;
  r.state = collect(m, source, opt);
  r.table = compute_ranges(r.state);
  return r;
}

}  // namespace quench::calib
