#pragma once
// The data options of every subcommand that runs samples through a model (calibrate, quantize,
// compare): where the samples come from, how images are preprocessed, which samples are used and
// what happens to bad ones.
//
//   --data [NAME=]PATH ...    PATH: FILE.npy (samples along axis 0), FILE.npz (np.savez; bare: its
//                             arrays feed the inputs of their names), a DIRECTORY or LIST.txt of
//                             per-sample .npy/.npz files or of images, or raw binary files with
//                             --raw-shape/--raw-dtype (default: the model input's); NAME may be
//                             left out when the model has one input
//   --images [NAME=]DIR_OR_LIST [--input NAME]   JPEG/PNG files preprocessed by --shape C,H,W
//                             --resize --interp --rgb|--bgr --scale --mean --std --layout, or by
//                             --preprocess FILE.json with the same keys (flags override it)
//   --samples N --shuffle --seed S   a seeded subset / order (quench::data::subset_source)
//   --skip-bad                bad samples (unreadable, wrong shape/dtype, NaN/Inf) are skipped and
//                             listed instead of stopping the run
//
// Every sample is checked against the model's inputs (quench::data::checked_source).

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli_io.hpp"
#include "quench/core/error.hpp"
#include "quench/data/checked_source.hpp"
#include "quench/data/file_list.hpp"
#include "quench/data/joined_source.hpp"
#include "quench/data/npy_source.hpp"
#include "quench/data/npz_source.hpp"
#include "quench/data/raw_source.hpp"
#include "quench/data/sample_files_source.hpp"
#include "quench/data/subset_source.hpp"
#include "quench/graph/model.hpp"
#ifdef QUENCH_HAVE_IMAGE
#include "quench/data/image_source.hpp"
#endif

namespace quench_cli {

struct data_args {
  std::vector<std::string> data;
  std::string images, input;  ///< --images [NAME=]DIR_OR_LIST, --input NAME
  std::string shape, resize, interp, scale, mean, std, layout, preprocess;
  bool rgb = false, bgr = false;
  std::string raw_shape, raw_dtype;
  std::int64_t samples = -1;
  std::uint64_t seed = 0;
  bool shuffle = false, skip_bad = false;

  /// No data given (neither --data nor --images).
  bool empty() const noexcept { return data.empty() && images.empty(); }
};

/// Which of the options a subcommand takes: compare has its own --input and --seed.
struct data_option_set {
  bool input_flag = true, seed_flag = true;
};

inline void add_data_options(CLI::App* cmd, data_args& d, data_option_set which = {}) {
  cmd->add_option("--data,-d", d.data,
                  "[NAME=]PATH for a graph input: FILE.npy (samples along axis 0), FILE.npz (bare: arrays by name), a directory or list "
                  "file of per-sample .npy/.npz or images, raw files with --raw-shape");
  cmd->add_option("--images", d.images, "[NAME=]DIR_OR_LIST: JPEG/PNG images for a graph input, preprocessed by the options below");
  if (which.input_flag) cmd->add_option("--input", d.input, "graph input that --images feeds (default: the model's only input)");
  auto* g = cmd->add_option_group("image preprocessing", "how --images (and image folders in --data) become tensors");
  g->add_option("--shape", d.shape, "C,H,W of one sample (default: the model input's)");
  g->add_option("--resize", d.resize, "exact, short-crop or keep-pad (default exact)");
  g->add_option("--interp", d.interp, "linear, area or nearest (default linear)");
  g->add_flag("--rgb", d.rgb, "RGB channel order (default)");
  g->add_flag("--bgr", d.bgr, "BGR channel order (OpenCV's)");
  g->add_option("--scale", d.scale, "pixel scale before mean/std (default 1/255)");
  g->add_option("--mean", d.mean, "per-channel mean, a,b,c (after --scale)");
  g->add_option("--std", d.std, "per-channel std, a,b,c");
  g->add_option("--layout", d.layout, "nchw or nhwc (default nchw)");
  g->add_option("--preprocess", d.preprocess, "JSON file with the same keys (shape, resize, interp, order, scale, mean, std, layout, ...)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--raw-shape", d.raw_shape, "raw binary data: shape of one sample, e.g. 3,224,224 (default: the model input's)");
  cmd->add_option("--raw-dtype", d.raw_dtype, "raw binary data: element type, e.g. float32, uint8 (default: the model input's)");
  cmd->add_option("--samples", d.samples, "use N samples, chosen at random by --seed (default: all)")->check(CLI::PositiveNumber);
  cmd->add_flag("--shuffle", d.shuffle, "seeded random order of the samples");
  if (which.seed_flag) cmd->add_option("--seed", d.seed, "seed of --samples and --shuffle")->capture_default_str();
  cmd->add_flag("--skip-bad", d.skip_bad, "skip unreadable, misshapen or non-finite samples, and list them, instead of stopping");
}

namespace detail {

/// The graph inputs the data must feed (initializer-backed inputs have defaults).
inline std::vector<quench::data::input_spec> model_inputs(const quench::model& m) {
  std::vector<quench::data::input_spec> out;
  for (const quench::value* v : m.main_graph().inputs()) {
    if (v->is_initializer()) continue;
    quench::data::input_spec s;
    s.name = v->name();
    s.type = v->dtype();
    if (!v->dims() || v->dims()->empty()) {
      s.any_rank = true;
    } else {
      for (std::size_t i = 1; i < v->dims()->size(); ++i) s.sample_dims.push_back((*v->dims())[i].value ? *(*v->dims())[i].value : -1);
    }
    out.push_back(std::move(s));
  }
  return out;
}

inline const quench::data::input_spec* find_input(const std::vector<quench::data::input_spec>& inputs, const std::string& name) {
  for (const auto& s : inputs)
    if (s.name == name) return &s;
  return nullptr;
}

inline std::string input_names(const std::vector<quench::data::input_spec>& inputs) {
  std::string all;
  for (const auto& s : inputs) all += (all.empty() ? "'" : ", '") + s.name + "'";
  return all;
}

/// The input a spec without NAME= feeds: the model's only one.
inline std::string only_input(const std::vector<quench::data::input_spec>& inputs, const std::string& what) {
  if (inputs.size() != 1)
    throw quench::error(quench::errc::invalid_argument, what, "the model has inputs " + input_names(inputs) + ": give NAME=PATH");
  return inputs[0].name;
}

inline std::vector<std::int64_t> parse_ints(const std::string& s, const std::string& flag) {
  std::vector<std::int64_t> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const std::size_t end = std::min(s.find(',', pos), s.size());
    try {
      std::size_t used = 0;
      const std::string part = s.substr(pos, end - pos);
      out.push_back(std::stoll(part, &used));
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw quench::error(quench::errc::invalid_argument, flag + " '" + s + "'", "expected comma-separated integers, e.g. 3,224,224");
    }
    pos = end + 1;
  }
  return out;
}

inline std::vector<float> parse_floats(const std::string& s, const std::string& flag) {
  std::vector<float> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const std::size_t end = std::min(s.find(',', pos), s.size());
    try {
      std::size_t used = 0;
      const std::string part = s.substr(pos, end - pos);
      out.push_back(std::stof(part, &used));
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw quench::error(quench::errc::invalid_argument, flag + " '" + s + "'", "expected comma-separated numbers, e.g. 0.485,0.456,0.406");
    }
    pos = end + 1;
  }
  return out;
}

inline bool is_image_file(const std::filesystem::path& p) {
  const std::string e = quench::data::detail::lower(p.extension().string());
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}
inline bool is_array_file(const std::filesystem::path& p) {
  const std::string e = quench::data::detail::lower(p.extension().string());
  return e == ".npy" || e == ".npz";
}

/// One image source for `name` with the preprocessing of `d`, shaped after the model input.
inline std::unique_ptr<quench::data::sample_source> open_images(const std::string& name, std::vector<std::filesystem::path> files,
                                                                const data_args& d, const quench::data::input_spec* spec) {
#ifdef QUENCH_HAVE_IMAGE
  namespace qd = quench::data;
  qd::preprocess_options o;
  bool shape_given = false;
  if (!d.preprocess.empty()) {
    const std::string text = read_text(d.preprocess);
    o = qd::preprocess_from_json(text, "--preprocess '" + d.preprocess + "'");
    shape_given = text.find("\"shape\"") != std::string::npos;
  }
  if (!d.layout.empty()) {
    if (d.layout == "nchw") o.out_layout = qd::layout::nchw;
    else if (d.layout == "nhwc") o.out_layout = qd::layout::nhwc;
    else throw quench::error(quench::errc::invalid_argument, "--layout", "expected nchw or nhwc, found '" + d.layout + "'");
  }
  if (!d.shape.empty()) {
    const auto s = parse_ints(d.shape, "--shape");
    if (s.size() != 3) throw quench::error(quench::errc::invalid_argument, "--shape '" + d.shape + "'", "expected C,H,W");
    o.channels = s[0], o.height = s[1], o.width = s[2];
  } else if (!shape_given) {
    // The model input's [N, C, H, W] (or [N, H, W, C] with --layout nhwc).
    if (!spec || spec->sample_dims.size() != 3 || spec->sample_dims[0] < 0 || spec->sample_dims[1] < 0 || spec->sample_dims[2] < 0)
      throw quench::error(quench::errc::invalid_argument, "images for input '" + name + "'",
                          "the model input has no fixed [N, C, H, W] shape: give --shape C,H,W");
    const auto& s = spec->sample_dims;
    if (o.out_layout == qd::layout::nchw) o.channels = s[0], o.height = s[1], o.width = s[2];
    else o.height = s[0], o.width = s[1], o.channels = s[2];
  }
  if (!d.resize.empty()) {
    if (d.resize == "exact") o.resize = qd::resize_mode::exact;
    else if (d.resize == "short-crop" || d.resize == "short_crop") o.resize = qd::resize_mode::short_crop;
    else if (d.resize == "keep-pad" || d.resize == "keep_pad") o.resize = qd::resize_mode::keep_pad;
    else throw quench::error(quench::errc::invalid_argument, "--resize", "expected exact, short-crop or keep-pad, found '" + d.resize + "'");
  }
  if (!d.interp.empty()) {
    if (d.interp == "linear") o.interp = qd::interpolation::linear;
    else if (d.interp == "area") o.interp = qd::interpolation::area;
    else if (d.interp == "nearest") o.interp = qd::interpolation::nearest;
    else throw quench::error(quench::errc::invalid_argument, "--interp", "expected linear, area or nearest, found '" + d.interp + "'");
  }
  if (d.rgb && d.bgr) throw quench::error(quench::errc::invalid_argument, "--rgb/--bgr", "give one of them");
  if (d.rgb) o.order = qd::channel_order::rgb;
  if (d.bgr) o.order = qd::channel_order::bgr;
  if (!d.scale.empty()) {
    const auto v = parse_floats(d.scale, "--scale");
    if (v.size() != 1) throw quench::error(quench::errc::invalid_argument, "--scale '" + d.scale + "'", "expected one number");
    o.scale = v[0];
  }
  if (!d.mean.empty()) o.mean = parse_floats(d.mean, "--mean");
  if (!d.std.empty()) o.std = parse_floats(d.std, "--std");
  if (o.channels == 1) {  // a gray model keeps the 3-channel defaults out of the way
    if (d.mean.empty() && o.mean.size() == 3 && o.mean[0] == o.mean[1] && o.mean[1] == o.mean[2]) o.mean.resize(1);
    if (d.std.empty() && o.std.size() == 3 && o.std[0] == o.std[1] && o.std[1] == o.std[2]) o.std.resize(1);
  }
  return std::make_unique<qd::image_source>(name, std::move(files), o);
#else
  (void)files, (void)d, (void)spec;
  throw quench::error(quench::errc::invalid_argument, "images for input '" + name + "'",
                      "this quench was built without quench::image (JPEG/PNG decoding): install libjpeg62-turbo-dev and libpng-dev and "
                      "rebuild, or pass the preprocessed samples as .npy");
#endif
}

/// One --data / --eval-data argument as a source.
inline std::unique_ptr<quench::data::sample_source> open_spec(const std::string& spec, const std::string& flag, const data_args& d,
                                                              const std::vector<quench::data::input_spec>& inputs) {
  namespace fs = std::filesystem;
  namespace qd = quench::data;
  const std::string what = flag + " '" + spec + "'";
  std::string name;
  fs::path path = spec;
  const auto eq = spec.find('=');
  if (eq != std::string::npos && eq > 0 && spec.substr(0, eq).find('/') == std::string::npos) {
    name = spec.substr(0, eq);
    path = spec.substr(eq + 1);
    if (!find_input(inputs, name))
      throw quench::error(quench::errc::invalid_argument, what, "'" + name + "' is not a graph input; the model takes " + input_names(inputs));
  }
  std::error_code ec;
  if (!fs::exists(path, ec)) throw quench::error(quench::errc::io_error, what, "no such file or directory '" + path.string() + "'");
  std::map<std::string, std::int64_t> ranks;
  for (const auto& s : inputs)
    if (!s.any_rank) ranks[s.name] = static_cast<std::int64_t>(s.sample_dims.size());
  const bool raw = !d.raw_shape.empty() || !d.raw_dtype.empty();
  const std::string ext = qd::detail::lower(path.extension().string());

  auto open_raw = [&](std::vector<fs::path> files) -> std::unique_ptr<qd::sample_source> {
    const std::string input = name.empty() ? only_input(inputs, what) : name;
    const qd::input_spec* s = find_input(inputs, input);
    std::vector<std::int64_t> dims;
    if (!d.raw_shape.empty()) dims = parse_ints(d.raw_shape, "--raw-shape");
    else if (s && !s->any_rank) dims = s->sample_dims;
    bool fixed = !dims.empty() || (s && !s->any_rank);
    for (auto x : dims) fixed = fixed && x >= 0;
    if (!fixed) throw quench::error(quench::errc::invalid_argument, what, "the model input has no fixed sample shape: give --raw-shape");
    quench::dtype type = s ? s->type : quench::dtype::undefined;
    if (!d.raw_dtype.empty()) {
      try {
        type = quench::dtype_from_name(d.raw_dtype);
      } catch (const quench::error&) {
        throw quench::error(quench::errc::invalid_argument, "--raw-dtype", "expected an element type like float32, float16, uint8 or int64, found '" + d.raw_dtype + "'");
      }
    }
    return std::make_unique<qd::raw_source>(input, std::move(files), quench::shape(dims), type);
  };

  if (fs::is_directory(path, ec) || (ext != ".npy" && ext != ".npz" && !(raw && ext != ".txt" && ext != ".lst"))) {
    // A directory or list file: of raw files (--raw-*), of per-sample arrays, or of images.
    std::vector<fs::path> files = qd::list_files(path, raw ? std::vector<std::string>{} : std::vector<std::string>{".npy", ".npz", ".png", ".jpg", ".jpeg"});
    if (raw) return open_raw(std::move(files));
    std::size_t images = 0, arrays = 0;
    for (const auto& f : files) images += is_image_file(f), arrays += is_array_file(f);
    if (images == files.size()) {
      const std::string input = name.empty() ? only_input(inputs, what) : name;
      return open_images(input, std::move(files), d, find_input(inputs, input));
    }
    if (arrays == files.size()) return std::make_unique<qd::sample_files_source>(std::move(files), name, ranks);
    throw quench::error(quench::errc::invalid_argument, what,
                        "expected .npy/.npz files or images (.png, .jpg), found " + std::to_string(images) + " images, " + std::to_string(arrays) +
                            " arrays and other files (raw binary data needs --raw-shape / --raw-dtype)");
  }
  if (ext == ".npz") {
    if (name.empty()) return std::make_unique<qd::npz_source>(path);
    const qd::npz_archive z(path);
    const auto* m = z.find(name);
    if (!m && z.members().size() == 1) m = &z.members()[0];
    if (!m) throw quench::error(quench::errc::invalid_argument, what, "expected an array '" + name + "' or a single array, found " + z.names());
    return std::make_unique<qd::npz_source>(path, std::vector<std::pair<std::string, std::string>>{{name, m->name}});
  }
  if (ext == ".npy") {
    const std::string input = name.empty() ? only_input(inputs, what) : name;
    return std::make_unique<qd::npy_source>(std::vector<std::pair<std::string, fs::path>>{{input, path}});
  }
  return open_raw({path});
}

inline std::unique_ptr<quench::data::sample_source> join(std::vector<std::unique_ptr<quench::data::sample_source>> parts) {
  if (parts.size() == 1) return std::move(parts[0]);
  return std::make_unique<quench::data::joined_source>(std::move(parts));
}

}  // namespace detail

/// The samples of --data / --images, checked against `m`'s inputs, with bad ones skipped and
/// listed (--skip-bad) and --samples / --shuffle applied.
inline std::unique_ptr<quench::data::sample_source> open_source(const data_args& d, const quench::model& m) {
  namespace qd = quench::data;
  if (d.empty()) throw quench::error(quench::errc::invalid_argument, "data", "give --data [NAME=]PATH or --images DIR");
  const auto inputs = detail::model_inputs(m);
  std::vector<std::unique_ptr<qd::sample_source>> parts;
  for (const auto& s : d.data) parts.push_back(detail::open_spec(s, "--data", d, inputs));
  if (!d.images.empty()) {
    std::string name = d.input, where = d.images;
    const auto eq = where.find('=');
    if (eq != std::string::npos && eq > 0 && where.substr(0, eq).find('/') == std::string::npos) name = where.substr(0, eq), where = where.substr(eq + 1);
    if (name.empty()) name = detail::only_input(inputs, "--images");
    if (!detail::find_input(inputs, name))
      throw quench::error(quench::errc::invalid_argument, "--input '" + name + "'", "is not a graph input; the model takes " + detail::input_names(inputs));
    parts.push_back(detail::open_images(name, qd::list_files(where, {".png", ".jpg", ".jpeg"}), d, detail::find_input(inputs, name)));
  }
  qd::checked_options co;
  co.inputs = inputs;
  co.skip_bad = d.skip_bad;
  auto checked = std::make_unique<qd::checked_source>(detail::join(std::move(parts)), co);
  if (!checked->skipped().empty()) {
    const std::size_t n = checked->skipped().size();
    std::fprintf(stderr, "--skip-bad: skipped %zu bad sample%s of %lld:\n", n, n == 1 ? "" : "s",
                 static_cast<long long>(checked->size() + static_cast<std::int64_t>(n)));
    for (const auto& s : checked->skipped()) std::fprintf(stderr, "  %s\n", s.c_str());
  }
  if (d.samples < 0 && !d.shuffle) return checked;
  qd::subset_options so;
  so.samples = d.samples;
  so.shuffle = d.shuffle;
  so.seed = d.seed;
  return std::make_unique<qd::subset_source>(std::move(checked), so);
}

/// Evaluation samples (quantize --eval-data): the same kinds of sources, checked, but never
/// subsampled, shuffled or skipped, since --labels are matched to them by position.
inline std::unique_ptr<quench::data::sample_source> open_eval_source(const std::vector<std::string>& specs, const data_args& d,
                                                                     const quench::model& m) {
  const auto inputs = detail::model_inputs(m);
  std::vector<std::unique_ptr<quench::data::sample_source>> parts;
  for (const auto& s : specs) parts.push_back(detail::open_spec(s, "--eval-data", d, inputs));
  quench::data::checked_options co;
  co.inputs = inputs;
  return std::make_unique<quench::data::checked_source>(detail::join(std::move(parts)), co);
}

}  // namespace quench_cli
