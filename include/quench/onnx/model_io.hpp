#pragma once
// Loading and saving ONNX models: files (memory-mapped on load, written atomically on save),
// buffers and streams, with external data.
//
//     quench::model m = quench::onnx::load_model("resnet50.onnx");
//     ... passes ...
//     quench::onnx::save_model(m, "resnet50.quant.onnx");   // never leaves a half-written file

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <istream>
#include <iterator>
#include <string>

#include "quench/core/atomic_file.hpp"
#include "quench/core/error.hpp"
#include "quench/graph/model.hpp"
#include "quench/onnx/external_data.hpp"
#include "quench/onnx/model_proto.hpp"

namespace quench::onnx {

/// Serialized protobuf messages cannot exceed 2 GiB; models whose inline tensors would come
/// close are saved with external data instead (tensors >= 1 KiB).
inline constexpr std::size_t inline_model_limit = (std::size_t{1} << 31) - (std::size_t{1} << 26);
/// onnx.save(save_as_external_data=True)'s size_threshold: smaller tensors stay inline.
inline constexpr std::size_t external_threshold_default = 1024;

struct save_options {
  /// Tensors of at least this many bytes go to the external data file (0 = none by size, but
  /// see keep_external).
  std::size_t external_threshold = 0;
  /// Tensors loaded from external data are written to external data again; and when the model
  /// came with external data (model::had_external_data) and external_threshold is 0, so are
  /// tensors of at least 1 KiB (onnx.save's default), or of the smallest external tensor left if
  /// smaller: a model that came with external data leaves with it, also after its weights were
  /// quantized or converted (new tensors, replacing every external one).
  bool keep_external = true;
  /// Tensor bytes the model file itself may hold; above it, tensors >= 1 KiB go external.
  std::size_t inline_limit = inline_model_limit;
  /// File name of the external data, beside the model (default: "<model file name>.data").
  std::string external_location;
  /// Offset alignment inside the external data file (page size, so runtimes can mmap tensors).
  std::size_t external_alignment = 4096;
};

namespace detail {

/// Bytes of the smallest tensor loaded from external data in `g` and its sub-graphs (0: none).
inline std::size_t smallest_external(const graph& g) {
  std::size_t least = 0;
  auto see = [&](const tensor& t, tensor_encoding enc) {
    if (enc == tensor_encoding::external && (least == 0 || t.nbytes() < least)) least = std::max<std::size_t>(t.nbytes(), 1);
  };
  auto see_graph = [&](const graph& sg) {
    const std::size_t s = smallest_external(sg);
    if (s && (least == 0 || s < least)) least = s;
  };
  for (const value* v : g.initializers()) see(*v->initializer(), v->initializer_encoding());
  for (const node* n : g.nodes())
    for (const attribute& a : n->attributes()) {
      std::size_t ti = 0;
      auto enc = [&] { return ti < a.tensor_encodings.size() ? a.tensor_encodings[ti++] : tensor_encoding::raw; };
      if (a.t) see(*a.t, enc());
      for (const auto& t : a.tensors) see(*t, enc());
      if (a.g) see_graph(*a.g);
      for (const auto& sg : a.graphs) see_graph(*sg);
    }
  return least;
}

inline std::size_t tensor_bytes_inline(const graph& g, const save_options& o, bool allow_external) {
  std::size_t total = 0;
  auto count = [&](const tensor& t, tensor_encoding enc) {
    const bool ext = allow_external && ((enc == tensor_encoding::external && o.keep_external) ||
                                        (o.external_threshold > 0 && t.nbytes() >= o.external_threshold));
    if (!ext) total += t.nbytes();
  };
  for (const value* v : g.initializers()) count(*v->initializer(), v->initializer_encoding());
  for (const node* n : g.nodes())
    for (const attribute& a : n->attributes()) {
      if (a.t) count(*a.t, a.tensor_encodings.empty() ? tensor_encoding::raw : a.tensor_encodings[0]);
      for (const auto& t : a.tensors) count(*t, tensor_encoding::raw);
      if (a.g) total += tensor_bytes_inline(*a.g, o, allow_external);
      for (const auto& sg : a.graphs) total += tensor_bytes_inline(*sg, o, allow_external);
    }
  return total;
}

inline model parse_model_bytes(const void* data, std::size_t size, const load_options& opts, const std::string& what) {
  if (size > static_cast<std::size_t>(INT_MAX))
    throw_error(errc::parse_error, what, "a serialized ONNX model cannot exceed 2 GiB (use external data)");
  ::ONNX_NAMESPACE::ModelProto mp;
  if (!mp.ParseFromArray(data, static_cast<int>(size)))
    throw_error(errc::parse_error, what, "is not a valid ONNX model (protobuf parsing failed: truncated or corrupt)");
  return model_from_proto(std::move(mp), opts);
}

}  // namespace detail

/// Loads a model file; external data is resolved relative to the file's directory.
inline model load_model(const std::filesystem::path& path, load_options opts = {}) {
  if (opts.base_dir.empty()) opts.base_dir = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw_error(errc::io_error, {}, "'" + path.string() + "' is not a readable file");
  mapped_file file(path, "model file");
  return detail::parse_model_bytes(file.data(), file.size(), opts, "'" + path.string() + "'");
}

/// Loads a serialized model from memory; external data needs `opts.base_dir`.
inline model load_model_buffer(const void* data, std::size_t size, const load_options& opts = {}) {
  return detail::parse_model_bytes(data, size, opts, "model buffer");
}

inline model load_model_stream(std::istream& in, const load_options& opts = {}) {
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw_error(errc::io_error, {}, "reading the model stream failed");
  return detail::parse_model_bytes(bytes.data(), bytes.size(), opts, "model stream");
}

/// Serializes `m` with every tensor inline. Throws when the result would exceed 2 GiB.
inline std::string save_model_buffer(const model& m) {
  save_options o;
  o.keep_external = false;
  if (detail::tensor_bytes_inline(m.main_graph(), o, false) > inline_model_limit)
    throw_error(errc::invalid_argument, {}, "the model's tensors exceed 2 GiB; save it to a file with external data");
  detail::write_plan plan;
  plan.allow_external = false;
  ::ONNX_NAMESPACE::ModelProto mp;
  model_to_proto(m, mp, plan);
  std::string out;
  if (!mp.SerializeToString(&out)) throw_error(errc::invalid_argument, {}, "serializing the model failed");
  return out;
}

/// Saves `m` to `path` (temporary file + rename), with external data per `opts`, written the
/// same way to `opts.external_location` beside it.
inline void save_model(const model& m, const std::filesystem::path& path, save_options opts = {}) {
  if (opts.external_location.empty()) opts.external_location = path.filename().string() + ".data";
  if (std::filesystem::path(opts.external_location).has_parent_path())
    throw_error(errc::invalid_argument, {}, "external data location '" + opts.external_location + "' must be a plain file name");
  if (opts.external_alignment == 0) opts.external_alignment = 1;
  if (opts.keep_external && opts.external_threshold == 0 && m.had_external_data) {
    const std::size_t least = detail::smallest_external(m.main_graph());
    opts.external_threshold = least ? std::min(least, external_threshold_default) : external_threshold_default;
  }
  if (detail::tensor_bytes_inline(m.main_graph(), opts, true) > opts.inline_limit)
    opts.external_threshold =
        opts.external_threshold ? std::min(opts.external_threshold, external_threshold_default) : external_threshold_default;

  detail::write_plan plan;
  plan.threshold = opts.external_threshold;
  plan.keep_loaded_external = opts.keep_external;
  ::ONNX_NAMESPACE::ModelProto mp;
  model_to_proto(m, mp, plan);

  if (!plan.external.empty()) {
    const auto data_path = path.parent_path() / opts.external_location;
    write_file_atomically(data_path, [&](std::ofstream& f) {
      std::uint64_t offset = 0;
      static const char zeros[4096] = {};
      for (auto& e : plan.external) {
        const std::uint64_t aligned = (offset + opts.external_alignment - 1) / opts.external_alignment * opts.external_alignment;
        for (std::uint64_t pad = aligned - offset; pad > 0;) {
          const auto chunk = std::min<std::uint64_t>(pad, sizeof zeros);
          f.write(zeros, static_cast<std::streamsize>(chunk));
          pad -= chunk;
        }
        offset = aligned;
        f.write(reinterpret_cast<const char*>(e.data->bytes()), static_cast<std::streamsize>(e.data->nbytes()));
        auto set = [&](const char* key, const std::string& v) {
          auto& kv = *e.target->add_external_data();
          kv.set_key(key);
          kv.set_value(v);
        };
        set("location", opts.external_location);
        set("offset", std::to_string(offset));
        set("length", std::to_string(e.data->nbytes()));
        e.target->set_data_location(::ONNX_NAMESPACE::TensorProto::EXTERNAL);
        offset += e.data->nbytes();
      }
    });
  }
  if (mp.ByteSizeLong() > static_cast<std::size_t>(INT_MAX))
    throw_error(errc::invalid_argument, {}, "the model proto exceeds 2 GiB even with external data");
  write_file_atomically(path, [&](std::ofstream& f) {
    if (!mp.SerializeToOstream(&f)) throw_error(errc::io_error, {}, "serializing the model to '" + path.string() + "' failed");
  });
}

}  // namespace quench::onnx
