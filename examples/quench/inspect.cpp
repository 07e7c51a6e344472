// quench inspect: what is in an ONNX model.
//
//   quench inspect MODEL.onnx          readable tables
//   quench inspect MODEL.onnx --json   the same facts as one JSON object (keys below)
//
// JSON keys: file, file_bytes, ir_version, producer_name, producer_version, domain, model_version,
// graph_name, metadata, opsets[{domain, version}], inputs / outputs [{name, dtype, shape}],
// initializer_inputs, nodes{main, subgraphs, subgraph_count}, ops{main, subgraphs},
// parameters{tensors, elements, bytes, by_dtype{<dtype>: {tensors, elements, bytes}}},
// quantization{qdq_pairs, lone_dequantize, quantize_linear, dequantize_linear},
// external_data{files[{location, tensors, bytes, file_bytes}], tensors, bytes}.
//
// The summary is built once as JSON; the human output is a rendering of that object, so both
// always say the same thing.

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "quench/onnx/model_io.hpp"

namespace quench_cli {
namespace {

namespace fs = std::filesystem;
namespace proto = ::ONNX_NAMESPACE;
using nlohmann::json;

// ---- types and shapes --------------------------------------------------------------------------

std::string elem_type_name(std::int32_t t) {
  if (quench::is_known_dtype(t)) return quench::to_string(static_cast<quench::dtype>(t));
  switch (t) {
    case 0: return "undefined";
    case 14: return "complex64";
    case 15: return "complex128";
    default: return "type" + std::to_string(t);
  }
}

std::string type_name(const proto::TypeProto& t) {
  switch (t.value_case()) {
    case proto::TypeProto::kTensorType: return "tensor(" + elem_type_name(t.tensor_type().elem_type()) + ")";
    case proto::TypeProto::kSequenceType: return "seq(" + type_name(t.sequence_type().elem_type()) + ")";
    case proto::TypeProto::kMapType:
      return "map(" + elem_type_name(t.map_type().key_type()) + ", " + type_name(t.map_type().value_type()) + ")";
    case proto::TypeProto::kOptionalType: return "optional(" + type_name(t.optional_type().elem_type()) + ")";
    case proto::TypeProto::kSparseTensorType:
      return "sparse_tensor(" + elem_type_name(t.sparse_tensor_type().elem_type()) + ")";
    case proto::TypeProto::kOpaqueType: return "opaque(" + t.opaque_type().domain() + "." + t.opaque_type().name() + ")";
    default: return "undefined";
  }
}

/// {name, dtype, shape}: dtype is the element type of a tensor, or the whole type for sequences,
/// maps and optionals (which have no shape); shape is null when the rank is unknown, and holds a
/// number, the symbolic name, or null per dimension.
json describe_value(const quench::value& v) {
  json out{{"name", v.name()}};
  // The value keeps the loaded TypeProto only as bytes; non-tensor types live only there.
  if (!v.type_residual().empty()) {
    proto::TypeProto t;
    if (t.ParseFromString(v.type_residual()) && t.value_case() != proto::TypeProto::kTensorType &&
        t.value_case() != proto::TypeProto::VALUE_NOT_SET) {
      out["dtype"] = type_name(t);
      out["shape"] = nullptr;
      return out;
    }
  }
  out["dtype"] = elem_type_name(v.elem_type());
  if (!v.dims()) {
    out["shape"] = nullptr;
    return out;
  }
  json shape = json::array();
  for (const quench::dim& d : *v.dims()) {
    if (d.value) shape.push_back(*d.value);
    else if (!d.param.empty()) shape.push_back(d.param);
    else shape.push_back(nullptr);
  }
  out["shape"] = std::move(shape);
  return out;
}

// ---- graph walks ---------------------------------------------------------------------------------

std::string op_key(const quench::node& n) {
  if (n.domain().empty() || n.domain() == "ai.onnx") return n.op_type();
  return n.domain() + "::" + n.op_type();
}

/// Calls `f(graph, depth)` for the main graph (depth 0) and every sub-graph below it.
template <class F>
void for_each_graph(const quench::graph& g, F&& f, int depth = 0) {
  f(g, depth);
  for (const quench::node* n : g.nodes())
    for (const quench::graph* sub : n->subgraphs()) for_each_graph(*sub, f, depth + 1);
}

bool is_quant_op(const quench::node& n, const char* op) {
  return n.op_type() == op && (n.domain().empty() || n.domain() == "ai.onnx" || n.domain() == "com.microsoft");
}

struct param_stats {
  std::uint64_t tensors = 0, elements = 0, bytes = 0;
  void add(std::uint64_t count, std::uint64_t nbytes) {
    ++tensors;
    elements += count;
    bytes += nbytes;
  }
};

/// Initializers and the data of Constant nodes, in every graph: exported models often keep their
/// weights in Constant nodes, and they count as parameters all the same.
json parameters(const quench::graph& main) {
  std::map<std::string, param_stats> by_dtype;
  param_stats total;
  auto add = [&](const std::string& dtype, std::uint64_t count, std::uint64_t nbytes) {
    by_dtype[dtype].add(count, nbytes);
    total.add(count, nbytes);
  };
  for_each_graph(main, [&](const quench::graph& g, int) {
    for (const quench::value* v : g.initializers()) {
      const quench::tensor& t = *v->initializer();
      add(quench::to_string(t.dtype()), t.size(), t.nbytes());
    }
    for (const quench::node* n : g.nodes()) {
      if (!n->is("Constant")) continue;
      for (const quench::attribute& a : n->attributes()) {
        if (a.name == "value" && a.t) add(quench::to_string(a.t->dtype()), a.t->size(), a.t->nbytes());
        else if (a.name == "value_float") add("float", 1, sizeof(float));
        else if (a.name == "value_floats") add("float", a.floats.size(), a.floats.size() * sizeof(float));
        else if (a.name == "value_int") add("int64", 1, sizeof(std::int64_t));
        else if (a.name == "value_ints") add("int64", a.ints.size(), a.ints.size() * sizeof(std::int64_t));
      }
    }
  });
  json dt = json::object();
  for (const auto& [name, s] : by_dtype) dt[name] = {{"tensors", s.tensors}, {"elements", s.elements}, {"bytes", s.bytes}};
  return {{"tensors", total.tensors}, {"elements", total.elements}, {"bytes", total.bytes}, {"by_dtype", std::move(dt)}};
}

/// QDQ pairs: QuantizeLinear nodes whose output feeds at least one DequantizeLinear (also across a
/// sub-graph boundary). A DequantizeLinear fed by anything else is "lone": weight-only quantization
/// stores the quantized weight as an initializer and dequantizes it at run time.
json quantization(const quench::graph& main) {
  std::set<const quench::node*> paired;
  std::uint64_t q = 0, dq = 0, lone = 0;
  for_each_graph(main, [&](const quench::graph& g, int) {
    for (const quench::node* n : g.nodes()) {
      if (is_quant_op(*n, "QuantizeLinear")) ++q;
      if (!is_quant_op(*n, "DequantizeLinear")) continue;
      ++dq;
      const quench::value* in = n->input(0);
      while (in && in->is_outer_ref()) in = in->outer();
      const quench::node* p = in ? in->producer() : nullptr;
      if (p && is_quant_op(*p, "QuantizeLinear")) paired.insert(p);
      else ++lone;
    }
  });
  return {{"qdq_pairs", paired.size()}, {"lone_dequantize", lone}, {"quantize_linear", q}, {"dequantize_linear", dq}};
}

// ---- external data -----------------------------------------------------------------------------

struct external_file {
  std::uint64_t tensors = 0, bytes = 0;
};

/// Bytes of an external tensor: its `length` entry, else what its type and dims need (the loader
/// has already checked the two agree and fit in the file).
std::uint64_t external_length(const proto::TensorProto& t) {
  for (const auto& kv : t.external_data()) {
    if (kv.key() != "length") continue;
    // Sparse tensors are opaque to the loader, so their entries arrive here unchecked.
    try {
      return std::stoull(kv.value());
    } catch (const std::exception&) {
      quench::throw_error(quench::errc::invalid_model, quench::tensor_context(t.name()),
                          "external_data 'length' is not a number: '" + kv.value() + "'");
    }
  }
  if (!quench::is_known_dtype(t.data_type())) return 0;
  std::uint64_t n = 1;
  for (auto d : t.dims()) n *= static_cast<std::uint64_t>(d);
  return quench::storage_bytes(static_cast<quench::dtype>(t.data_type()), n);
}

void collect_external(const proto::TensorProto& t, std::map<std::string, external_file>& out) {
  if (t.data_location() != proto::TensorProto::EXTERNAL) return;
  std::string location;
  for (const auto& kv : t.external_data())
    if (kv.key() == "location") location = kv.value();
  auto& f = out[location];
  ++f.tensors;
  f.bytes += external_length(t);
}

void collect_external(const proto::GraphProto& g, std::map<std::string, external_file>& out);

void collect_external(const proto::NodeProto& n, std::map<std::string, external_file>& out) {
  for (const auto& a : n.attribute()) {
    if (a.has_t()) collect_external(a.t(), out);
    for (const auto& t : a.tensors()) collect_external(t, out);
    if (a.has_sparse_tensor()) {
      collect_external(a.sparse_tensor().values(), out);
      collect_external(a.sparse_tensor().indices(), out);
    }
    if (a.has_g()) collect_external(a.g(), out);
    for (const auto& g : a.graphs()) collect_external(g, out);
  }
}

void collect_external(const proto::GraphProto& g, std::map<std::string, external_file>& out) {
  for (const auto& t : g.initializer()) collect_external(t, out);
  for (const auto& s : g.sparse_initializer()) {
    collect_external(s.values(), out);
    collect_external(s.indices(), out);
  }
  for (const auto& n : g.node()) collect_external(n, out);
}

bool has_external_tensors(const quench::graph& main) {
  bool any = false;
  for_each_graph(main, [&](const quench::graph& g, int) {
    for (const quench::value* v : g.initializers())
      any = any || v->initializer_encoding() == quench::tensor_encoding::external;
    for (const quench::node* n : g.nodes())
      for (const quench::attribute& a : n->attributes())
        any = any || std::count(a.tensor_encodings.begin(), a.tensor_encodings.end(), quench::tensor_encoding::external) > 0;
  });
  return any;
}

/// The graph view forgets where external tensors came from (locations are re-planned on save), so
/// the file names are read from the ModelProto. Only models that have external tensors pay for
/// this second parse, and their protobuf is small because the bulk of the bytes is elsewhere.
json external_data(const fs::path& path, const quench::graph& main) {
  json files = json::array();
  std::uint64_t tensors = 0, bytes = 0;
  if (has_external_tensors(main)) {
    quench::onnx::mapped_file file(path);
    proto::ModelProto mp;
    if (!mp.ParseFromArray(file.data(), static_cast<int>(file.size())))
      quench::throw_error(quench::errc::parse_error, "'" + path.string() + "'", "changed while it was read");
    std::map<std::string, external_file> found;
    collect_external(mp.graph(), found);
    for (const auto& fn : mp.functions())
      for (const auto& n : fn.node()) collect_external(n, found);
    const fs::path base = path.parent_path().empty() ? fs::path(".") : path.parent_path();
    for (const auto& [location, f] : found) {
      const fs::path full = quench::onnx::resolve_external_location(base, location, "external data");
      std::error_code ec;
      const auto size = fs::file_size(full, ec);
      files.push_back({{"location", location},
                       {"tensors", f.tensors},
                       {"bytes", f.bytes},
                       {"file_bytes", ec ? json(nullptr) : json(static_cast<std::uint64_t>(size))}});
      tensors += f.tensors;
      bytes += f.bytes;
    }
  }
  return {{"files", std::move(files)}, {"tensors", tensors}, {"bytes", bytes}};
}

// ---- the summary -------------------------------------------------------------------------------

json summarize(const fs::path& path) {
  const quench::model m = quench::onnx::load_model(path);
  // Protobuf reads an empty file, and many random ones, as a message with every field absent; the
  // loader keeps such a model, but ONNX requires ir_version, so it is not a model to describe.
  if (m.ir_version == 0)
    quench::throw_error(quench::errc::invalid_model, "'" + path.string() + "'",
                        "has no ir_version: not an ONNX model (empty, truncated or another kind of file?)");
  const quench::graph& g = m.main_graph();
  json out;
  out["file"] = path.string();
  std::error_code ec;
  const auto file_bytes = fs::file_size(path, ec);
  out["file_bytes"] = ec ? 0 : static_cast<std::uint64_t>(file_bytes);
  out["ir_version"] = m.ir_version;
  out["producer_name"] = m.producer_name;
  out["producer_version"] = m.producer_version;
  out["domain"] = m.domain;
  out["model_version"] = m.model_version;
  out["graph_name"] = g.name();
  json meta = json::object();
  for (const auto& [k, v] : m.metadata_props) meta[k] = v;
  out["metadata"] = std::move(meta);

  json opsets = json::array();
  for (const auto& o : m.opset_imports)
    opsets.push_back({{"domain", o.domain.empty() ? std::string("ai.onnx") : o.domain}, {"version", o.version}});
  out["opsets"] = std::move(opsets);

  // IR < 4 models list every initializer as a graph input too; those are weights, not inputs.
  json inputs = json::array(), outputs = json::array();
  std::uint64_t initializer_inputs = 0;
  for (const quench::value* v : g.inputs()) {
    if (v->is_initializer()) ++initializer_inputs;
    else inputs.push_back(describe_value(*v));
  }
  for (const quench::value* v : g.outputs()) outputs.push_back(describe_value(*v));
  out["inputs"] = std::move(inputs);
  out["outputs"] = std::move(outputs);
  out["initializer_inputs"] = initializer_inputs;

  std::map<std::string, std::uint64_t> main_ops, sub_ops;
  std::uint64_t main_nodes = 0, sub_nodes = 0, subgraphs = 0;
  for_each_graph(g, [&](const quench::graph& sg, int depth) {
    if (depth > 0) ++subgraphs;
    for (const quench::node* n : sg.nodes()) {
      ++(depth == 0 ? main_ops : sub_ops)[op_key(*n)];
      ++(depth == 0 ? main_nodes : sub_nodes);
    }
  });
  out["nodes"] = {{"main", main_nodes}, {"subgraphs", sub_nodes}, {"subgraph_count", subgraphs}};
  out["ops"] = {{"main", main_ops.empty() ? json::object() : json(main_ops)},
                {"subgraphs", sub_ops.empty() ? json::object() : json(sub_ops)}};
  out["parameters"] = parameters(g);
  out["quantization"] = quantization(g);
  out["external_data"] = external_data(path, g);
  return out;
}

// ---- human-readable rendering ------------------------------------------------------------------

std::string human_bytes(std::uint64_t n) {
  if (n < 1024) return std::to_string(n) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n) / 1024.0;
  int u = 0;
  while (v >= 1024.0 && u < 3) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

/// Columns padded to their widest cell; numeric columns right-aligned.
class table {
 public:
  table(std::vector<std::string> header, std::vector<bool> right) : right_(std::move(right)) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream& os) const {
    std::vector<std::size_t> width(rows_.front().size(), 0);
    for (const auto& r : rows_)
      for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    for (const auto& r : rows_) {
      std::string line;
      for (std::size_t i = 0; i < r.size(); ++i) {
        const std::string pad(width[i] - r[i].size(), ' ');
        line += "  ";
        line += right_[i] ? pad + r[i] : (i + 1 == r.size() ? r[i] : r[i] + pad);
      }
      os << line << '\n';
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
  std::vector<bool> right_;
};

std::string shape_text(const json& shape) {
  if (shape.is_null()) return "?";
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    const json& d = shape[i];
    s += d.is_null() ? std::string("?") : d.is_string() ? d.get<std::string>() : std::to_string(d.get<std::int64_t>());
  }
  return s + "]";
}

std::string count(std::uint64_t n) { return std::to_string(n); }
std::string plural(std::uint64_t n, const std::string& noun) { return std::to_string(n) + " " + noun + (n == 1 ? "" : "s"); }

void print_values(std::ostream& os, const char* title, const json& values) {
  os << '\n' << title << " (" << values.size() << ")\n";
  if (values.empty()) return;
  table t({"name", "dtype", "shape"}, {false, false, false});
  for (const json& v : values) t.add({v["name"].get<std::string>(), v["dtype"].get<std::string>(), shape_text(v["shape"])});
  t.print(os);
}

void print_human(std::ostream& os, const json& s) {
  os << "model       " << s["file"].get<std::string>() << " (" << human_bytes(s["file_bytes"]) << ")\n";
  os << "ir_version  " << s["ir_version"].get<std::int64_t>() << '\n';
  std::string producer = s["producer_name"].get<std::string>();
  if (!s["producer_version"].get<std::string>().empty()) producer += " " + s["producer_version"].get<std::string>();
  os << "producer    " << (producer.empty() ? "-" : producer) << '\n';
  os << "graph       " << s["graph_name"].get<std::string>() << '\n';
  std::string opsets;
  for (const json& o : s["opsets"])
    opsets += (opsets.empty() ? "" : ", ") + o["domain"].get<std::string>() + " " + std::to_string(o["version"].get<std::int64_t>());
  os << "opsets      " << (opsets.empty() ? "-" : opsets) << '\n';
  for (const auto& [k, v] : s["metadata"].items()) os << "metadata    " << k << " = " << v.get<std::string>() << '\n';

  print_values(os, "inputs", s["inputs"]);
  if (s["initializer_inputs"] > 0)
    os << "  (+ " << s["initializer_inputs"].get<std::uint64_t>() << " initializers also listed as graph inputs)\n";
  print_values(os, "outputs", s["outputs"]);

  const json& nodes = s["nodes"];
  os << "\noperators: " << plural(nodes["main"], "node") << " in the main graph, " << plural(nodes["subgraphs"], "node")
     << " in " << plural(nodes["subgraph_count"], "sub-graph") << '\n';
  // Most frequent first: the ops that dominate the model are what a reader looks for.
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> ops;
  for (const auto& [k, v] : s["ops"]["main"].items()) ops[k].first = v;
  for (const auto& [k, v] : s["ops"]["subgraphs"].items()) ops[k].second = v;
  std::vector<std::pair<std::string, std::pair<std::uint64_t, std::uint64_t>>> sorted(ops.begin(), ops.end());
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) {
    return a.second.first + a.second.second > b.second.first + b.second.second;
  });
  if (!sorted.empty()) {
    table t({"op_type", "main", "sub-graphs"}, {false, true, true});
    for (const auto& [k, c] : sorted) t.add({k, count(c.first), count(c.second)});
    t.print(os);
  }

  const json& p = s["parameters"];
  os << "\nparameters: " << plural(p["elements"], "element") << " in " << plural(p["tensors"], "tensor") << ", "
     << human_bytes(p["bytes"]) << " (initializers and Constant data)\n";
  if (!p["by_dtype"].empty()) {
    table t({"dtype", "tensors", "elements", "bytes"}, {false, true, true, true});
    for (const auto& [k, v] : p["by_dtype"].items())
      t.add({k, count(v["tensors"]), count(v["elements"]), human_bytes(v["bytes"])});
    t.print(os);
  }

  const json& q = s["quantization"];
  os << "\nquantization: " << plural(q["qdq_pairs"], "QDQ pair") << ", "
     << q["lone_dequantize"].get<std::uint64_t>() << " lone DequantizeLinear (weight-only); "
     << q["quantize_linear"].get<std::uint64_t>() << " QuantizeLinear and " << q["dequantize_linear"].get<std::uint64_t>()
     << " DequantizeLinear in all\n";

  const json& e = s["external_data"];
  if (e["files"].empty()) {
    os << "\nexternal data: none\n";
    return;
  }
  os << "\nexternal data: " << plural(e["tensors"], "tensor") << ", " << human_bytes(e["bytes"]) << " in "
     << plural(e["files"].size(), "file") << '\n';
  table t({"location", "tensors", "bytes", "file size"}, {false, true, true, true});
  for (const json& f : e["files"])
    t.add({f["location"].get<std::string>(), count(f["tensors"]), human_bytes(f["bytes"]),
           f["file_bytes"].is_null() ? std::string("?") : human_bytes(f["file_bytes"])});
  t.print(os);
}

struct inspect_options {
  std::string model;
  bool json = false;
};

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto opts = std::make_shared<inspect_options>();
  auto* cmd = app.add_subcommand("inspect", "Show opsets, inputs/outputs, op types and parameters of a model");
  cmd->add_option("model", opts->model, "ONNX model file (.onnx); external data is read from beside it")->required();
  cmd->add_flag("--json", opts->json, "Print one JSON object instead of tables");
  cmd->callback([opts] {
    const json summary = summarize(opts->model);
    // Names in a model are bytes, not necessarily UTF-8: replace what JSON cannot carry.
    if (opts->json) std::cout << summary.dump(2, ' ', false, json::error_handler_t::replace) << '\n';
    else print_human(std::cout, summary);
    std::cout.flush();
    if (!std::cout) quench::throw_error(quench::errc::io_error, {}, "writing to standard output failed");
  });
}

}  // namespace quench_cli
