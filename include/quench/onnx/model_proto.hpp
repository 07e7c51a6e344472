#pragma once
// Conversion between ONNX ModelProto and quench::model, losing nothing.
//
// Every message quench models (model, graph, node, attribute, tensor, value info) keeps the
// fields quench does not model in a serialized residual: a copy of the message with the modeled
// fields cleared. Saving parses the residual and sets the modeled fields again. Protobuf writes
// known fields in field-number order and unknown fields last, so an untouched model serializes to
// the same bytes. A scalar field that is present with its default value (say doc_string: "")
// stays in the residual, so its presence survives too.

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/graph/model.hpp"
#include "quench/onnx/external_data.hpp"
#include "quench/onnx/tensor_proto.hpp"

namespace quench::onnx {

namespace proto = ::ONNX_NAMESPACE;

struct load_options {
  /// Directory that external data locations are relative to (set by load_model from the path).
  std::filesystem::path base_dir;
  /// Resolve and map external data. When false, external tensors are an error.
  bool load_external_data = true;
};

namespace detail {

inline std::string serialize_or_empty(const google::protobuf::MessageLite& m) {
  std::string s;
  if (m.ByteSizeLong() > 0) m.SerializeToString(&s);
  return s;
}

template <class Message>
inline void parse_residual(const std::string& residual, Message& m, const char* what) {
  if (!residual.empty() && !m.ParseFromString(residual))
    throw_error(errc::parse_error, {}, std::string("corrupt residual of a ") + what);
}

/// Reads elem_type and dims of a tensor TypeProto; non-tensor types give (0, nullopt).
inline void read_tensor_type(const proto::TypeProto& t, std::int32_t& elem_type, std::optional<std::vector<dim>>& dims) {
  elem_type = 0;
  dims.reset();
  if (!t.has_tensor_type()) return;
  elem_type = t.tensor_type().elem_type();
  if (!t.tensor_type().has_shape()) return;
  std::vector<dim> d;
  for (const auto& pd : t.tensor_type().shape().dim()) {
    dim x;
    if (pd.has_dim_value()) x.value = pd.dim_value();
    else if (pd.has_dim_param()) x.param = pd.dim_param();
    d.push_back(std::move(x));
  }
  dims = std::move(d);
}

class graph_reader {
 public:
  graph_reader(const load_options& opts, external_data_cache& cache) : opts_(opts), cache_(cache) {}

  /// Whether any tensor read so far came from external data.
  bool read_external() const noexcept { return read_external_; }

  /// Fills `g` from `gp`, consuming gp's tensor bytes. Sub-graphs are built after all of this
  /// graph's values exist, so their outer references resolve whatever the node order.
  void read(proto::GraphProto& gp, graph& g) {
    g.set_name(gp.name());
    g.set_doc_string(gp.doc_string());
    const std::string gctx = "graph '" + gp.name() + "'";

    for (auto& vi : *gp.mutable_input()) {
      value& v = g.add_input(vi.name());
      read_value_info(vi, v);
    }
    for (auto& tp : *gp.mutable_initializer()) {
      if (tp.name().empty()) throw_error(errc::invalid_model, gctx, "an initializer has no name");
      const std::string name = tp.name();
      value* existing = g.find_value(name);
      if (existing && existing->is_initializer())
        throw_error(errc::invalid_model, gctx, "duplicate initializer '" + name + "'");
      const tensor_encoding enc = encoding_of(tp);
      tensor t = read_tensor(tp);
      std::string residual = tensor_residual(tp);
      value& v = existing ? *existing : g.add_initializer(std::move(t));
      if (existing) g.set_initializer(v, std::move(t));  // an IR < 4 input: its declared type stays
      v.set_initializer_encoding(enc);
      v.set_initializer_residual(std::move(residual));
    }
    for (const auto& sp : gp.sparse_initializer()) {
      const std::string& name = sp.values().name();
      if (!name.empty() && !g.find_value(name)) g.add_opaque_constant(name);
    }

    // Nodes with their outputs first, inputs once every value of this graph exists.
    std::vector<node*> nodes;
    nodes.reserve(static_cast<std::size_t>(gp.node_size()));
    for (auto& np : *gp.mutable_node()) {
      std::vector<std::string> outs(np.output().begin(), np.output().end());
      node& n = g.add_node(np.op_type(), {}, outs, np.name(), np.domain());
      nodes.push_back(&n);
    }
    for (int i = 0; i < gp.node_size(); ++i) {
      node& n = *nodes[static_cast<std::size_t>(i)];
      for (const auto& in : gp.node(i).input()) {
        if (in.empty()) {
          g.append_input(n, nullptr);
          continue;
        }
        value* v = g.find_value(in);
        if (!v) {
          if (!g.parent()) throw_error(errc::invalid_model, n.context(), "consumes undefined value '" + in + "'");
          v = &g.outer_ref(in, n.context());
        }
        g.append_input(n, v);
      }
    }
    for (auto& vi : *gp.mutable_output()) {
      value* v = g.find_value(vi.name());
      if (!v) {
        if (!g.parent()) throw_error(errc::invalid_model, gctx, "graph output '" + vi.name() + "' is not defined");
        v = &g.outer_ref(vi.name(), gctx);
      }
      g.add_output(*v);
      read_value_info(vi, *v);
    }
    for (auto& vi : *gp.mutable_value_info()) {
      value* v = g.find_value(vi.name());
      if (!v) v = &g.add_opaque_constant(vi.name());  // value_info for nothing: kept, harmless
      read_value_info(vi, *v);
      g.add_value_info(*v);
    }
    // Attributes (with sub-graphs) and node residuals.
    for (int i = 0; i < gp.node_size(); ++i) read_node_body(*gp.mutable_node(i), *nodes[static_cast<std::size_t>(i)], g);

    gp.clear_input();
    gp.clear_output();
    gp.clear_initializer();
    gp.clear_node();
    gp.clear_value_info();
    clear_if_set(gp, &proto::GraphProto::name, &proto::GraphProto::clear_name);
    clear_if_set(gp, &proto::GraphProto::doc_string, &proto::GraphProto::clear_doc_string);
    g.set_residual(serialize_or_empty(gp));
  }

 private:
  template <class M>
  static void clear_if_set(M& m, const std::string& (M::*get)() const, void (M::*clear)()) {
    if (!(m.*get)().empty()) (m.*clear)();
  }

  tensor read_tensor(proto::TensorProto& tp) {
    if (encoding_of(tp) != tensor_encoding::external) return from_proto(std::move(tp));
    const std::string ctx = tensor_context(tp.name());
    if (!opts_.load_external_data) throw_error(errc::invalid_model, ctx, "tensor data is external and external data loading is off");
    std::string location;
    std::uint64_t offset = 0;
    bool has_length = false;
    std::uint64_t length = 0;
    for (const auto& kv : tp.external_data()) {
      try {
        if (kv.key() == "location") location = kv.value();
        else if (kv.key() == "offset") offset = std::stoull(kv.value());
        else if (kv.key() == "length") {
          length = std::stoull(kv.value());
          has_length = true;
        }
      } catch (const std::exception&) {
        throw_error(errc::invalid_model, ctx, "external_data '" + kv.key() + "' is not a number: '" + kv.value() + "'");
      }
    }
    const dtype type = dtype_from_onnx(tp.data_type(), ctx);
    // As for inline data (tensor_proto.hpp): strings have no fixed-size storage to map.
    if (type == dtype::string) throw_error(errc::unsupported_dtype, ctx, "string tensors are not supported");
    quench::onnx::detail::checked_numel(tp);
    quench::shape s(tp.dims().begin(), tp.dims().end());
    const std::size_t want = storage_bytes(type, s.numel());
    if (has_length && length != want)
      throw_error(errc::invalid_model, ctx,
                  "external data length " + std::to_string(length) + " does not match " + std::to_string(want) +
                      " bytes of " + to_string(type) + " " + to_string(s));
    auto bytes = cache_.slice(location, offset, want, ctx);
    read_external_ = true;
    return tensor::adopt(type, std::move(s), std::move(bytes), want, /*read_only=*/true, tp.name());
  }

  /// What remains of a TensorProto once data, dims, type, name and external location are taken.
  static std::string tensor_residual(proto::TensorProto& tp) {
    tp.clear_dims();
    if (tp.data_type() != 0) tp.clear_data_type();
    clear_if_set(tp, &proto::TensorProto::name, &proto::TensorProto::clear_name);
    tp.clear_raw_data();
    tp.clear_float_data();
    tp.clear_int32_data();
    tp.clear_int64_data();
    tp.clear_double_data();
    tp.clear_uint64_data();
    tp.clear_external_data();
    tp.clear_data_location();
    return serialize_or_empty(tp);
  }

  void read_value_info(proto::ValueInfoProto& vi, value& v) {
    if (vi.has_type()) {
      std::int32_t elem = 0;
      std::optional<std::vector<dim>> dims;
      read_tensor_type(vi.type(), elem, dims);
      // An initializer's tensor is the truth about its type, unless it is also a graph input.
      if (!v.is_initializer() || v.is_graph_input()) {
        v.set_elem_type(elem);
        v.set_dims(std::move(dims));
      }
      v.set_type_residual(vi.type().SerializeAsString());
    }
    vi.clear_type();
    vi.clear_name();
    if (v.info_residual().empty()) v.set_info_residual(serialize_or_empty(vi));
  }

  void read_node_body(proto::NodeProto& np, node& n, graph& g) {
    for (auto& ap : *np.mutable_attribute()) n.attributes().push_back(read_attribute(ap, n, g));
    np.clear_input();
    np.clear_output();
    np.clear_attribute();
    clear_if_set(np, &proto::NodeProto::name, &proto::NodeProto::clear_name);
    clear_if_set(np, &proto::NodeProto::op_type, &proto::NodeProto::clear_op_type);
    clear_if_set(np, &proto::NodeProto::domain, &proto::NodeProto::clear_domain);
    n.set_doc_string(np.doc_string());
    clear_if_set(np, &proto::NodeProto::doc_string, &proto::NodeProto::clear_doc_string);
    n.set_residual(serialize_or_empty(np));
  }

  attribute read_attribute(proto::AttributeProto& ap, node& n, graph& g) {
    attribute a;
    a.name = ap.name();
    a.type = static_cast<attribute_type>(ap.type());
    if (ap.has_f() && ap.f() != 0.f) {
      a.f = ap.f();
      ap.clear_f();
    }
    if (ap.has_i() && ap.i() != 0) {
      a.i = ap.i();
      ap.clear_i();
    }
    if (ap.has_s() && !ap.s().empty()) {
      a.s = std::move(*ap.mutable_s());
      ap.clear_s();
    }
    if (ap.has_t()) {
      a.tensor_encodings.push_back(encoding_of(ap.t()));
      a.t = std::make_unique<tensor>(read_tensor(*ap.mutable_t()));
      a.tensor_residuals.push_back(tensor_residual(*ap.mutable_t()));
      ap.clear_t();
    }
    if (ap.has_g()) {
      a.g = std::make_unique<graph>(&g, &n);
      read(*ap.mutable_g(), *a.g);
      ap.clear_g();
    }
    a.floats.assign(ap.floats().begin(), ap.floats().end());
    a.ints.assign(ap.ints().begin(), ap.ints().end());
    a.strings.assign(ap.strings().begin(), ap.strings().end());
    for (auto& tp : *ap.mutable_tensors()) {
      const tensor_encoding enc = encoding_of(tp);
      a.tensors.push_back(std::make_unique<tensor>(read_tensor(tp)));
      a.tensor_residuals.push_back(tensor_residual(tp));
      a.tensor_encodings.push_back(enc);
    }
    for (auto& gp : *ap.mutable_graphs()) {
      a.graphs.push_back(std::make_unique<graph>(&g, &n));
      read(gp, *a.graphs.back());
    }
    ap.clear_floats();
    ap.clear_ints();
    ap.clear_strings();
    ap.clear_tensors();
    ap.clear_graphs();
    clear_if_set(ap, &proto::AttributeProto::name, &proto::AttributeProto::clear_name);
    if (ap.type() != 0) ap.clear_type();
    a.residual = serialize_or_empty(ap);
    return a;
  }

  const load_options& opts_;
  external_data_cache& cache_;
  bool read_external_ = false;
};


/// Where the writer puts tensors that go to an external file; filled while building the proto.
struct external_tensor {
  proto::TensorProto* target;
  const tensor* data;
};

struct write_plan {
  bool allow_external = true;
  /// Tensors of at least this many bytes go external (0 = only those loaded as external).
  std::size_t threshold = 0;
  bool keep_loaded_external = true;
  std::vector<external_tensor> external;
};

class graph_writer {
 public:
  explicit graph_writer(write_plan& plan) : plan_(plan) {}

  void write(const graph& g, proto::GraphProto& gp) {
    parse_residual(g.residual(), gp, "graph");
    if (!g.name().empty()) gp.set_name(g.name());
    if (!g.doc_string().empty()) gp.set_doc_string(g.doc_string());
    for (const node* n : g.nodes()) write_node(*n, *gp.add_node());
    for (const value* v : g.initializers()) {
      proto::TensorProto& tp = *gp.add_initializer();
      parse_residual(v->initializer_residual(), tp, "initializer");
      write_tensor(*v->initializer(), v->initializer_encoding(), tp);
    }
    for (const value* v : g.inputs()) write_value_info(*v, *gp.add_input());
    for (const value* v : g.outputs()) write_value_info(*v, *gp.add_output());
    for (const value* v : g.value_infos()) write_value_info(*v, *gp.add_value_info());
  }

 private:
  void write_tensor(const tensor& t, tensor_encoding enc, proto::TensorProto& tp) {
    const bool external = plan_.allow_external &&
                          ((enc == tensor_encoding::external && plan_.keep_loaded_external) ||
                           (plan_.threshold > 0 && t.nbytes() >= plan_.threshold));
    if (external) {
      // Everything but the bytes now; the saver fills in location/offset/length.
      if (!t.name().empty()) tp.set_name(t.name());
      for (auto d : t.shape()) tp.add_dims(d);
      tp.set_data_type(static_cast<std::int32_t>(t.dtype()));
      plan_.external.push_back({&tp, &t});
      return;
    }
    to_proto(t, tp, enc == tensor_encoding::typed ? tensor_encoding::typed : tensor_encoding::raw);
  }

  static void write_value_info(const value& v, proto::ValueInfoProto& vi) {
    parse_residual(v.info_residual(), vi, "value info");
    vi.set_name(v.name());
    if (!v.type_residual().empty()) {
      proto::TypeProto original;
      parse_residual(v.type_residual(), original, "type");
      std::int32_t elem = 0;
      std::optional<std::vector<dim>> dims;
      read_tensor_type(original, elem, dims);
      if (elem == v.elem_type() && dims == v.dims()) {
        *vi.mutable_type() = std::move(original);
        return;
      }
    }
    if (v.elem_type() == 0 && !v.dims()) return;
    auto& tt = *vi.mutable_type()->mutable_tensor_type();
    tt.set_elem_type(v.elem_type());
    if (v.dims()) {
      auto& shape = *tt.mutable_shape();
      for (const dim& d : *v.dims()) {
        auto& pd = *shape.add_dim();
        if (d.value) pd.set_dim_value(*d.value);
        else if (!d.param.empty()) pd.set_dim_param(d.param);
      }
    }
  }

  void write_node(const node& n, proto::NodeProto& np) {
    parse_residual(n.residual(), np, "node");
    for (const value* in : n.inputs()) np.add_input(in ? in->name() : std::string());
    for (const value* out : n.outputs()) np.add_output(out ? out->name() : std::string());
    if (!n.name().empty()) np.set_name(n.name());
    if (!n.op_type().empty()) np.set_op_type(n.op_type());
    if (!n.domain().empty()) np.set_domain(n.domain());
    if (!n.doc_string().empty()) np.set_doc_string(n.doc_string());
    for (const attribute& a : n.attributes()) write_attribute(a, *np.add_attribute());
  }

  void write_attribute(const attribute& a, proto::AttributeProto& ap) {
    parse_residual(a.residual, ap, "attribute");
    if (!a.name.empty()) ap.set_name(a.name);
    if (a.type != attribute_type::undefined) ap.set_type(static_cast<proto::AttributeProto::AttributeType>(a.type));
    if (a.f != 0.f) ap.set_f(a.f);
    if (a.i != 0) ap.set_i(a.i);
    if (!a.s.empty()) ap.set_s(a.s);
    std::size_t ti = 0;
    auto tensor_out = [&](const tensor& t, proto::TensorProto& tp) {
      if (ti < a.tensor_residuals.size()) parse_residual(a.tensor_residuals[ti], tp, "attribute tensor");
      const tensor_encoding enc = ti < a.tensor_encodings.size() ? a.tensor_encodings[ti] : tensor_encoding::raw;
      ++ti;
      write_tensor(t, enc, tp);
    };
    if (a.t) tensor_out(*a.t, *ap.mutable_t());
    if (a.g) write(*a.g, *ap.mutable_g());
    for (float f : a.floats) ap.add_floats(f);
    for (auto i : a.ints) ap.add_ints(i);
    for (const auto& s : a.strings) ap.add_strings(s);
    for (const auto& t : a.tensors) tensor_out(*t, *ap.add_tensors());
    for (const auto& g : a.graphs) write(*g, *ap.add_graphs());
  }

  write_plan& plan_;
};

}  // namespace detail

/// Builds a model from `mp`, consuming it: tensor bytes move into the model without copies.
inline model model_from_proto(proto::ModelProto&& mp, const load_options& opts = {}) {
  model m;
  external_data_cache cache(opts.base_dir);
  if (mp.ir_version() != 0) {
    m.ir_version = mp.ir_version();
    mp.clear_ir_version();
  } else {
    m.ir_version = 0;
  }
  for (const auto& o : mp.opset_import()) m.opset_imports.push_back({o.domain(), o.version(), o.has_domain()});
  mp.clear_opset_import();
  auto take = [](std::string& dst, const std::string& src, auto clear) {
    dst = src;
    if (!src.empty()) clear();
  };
  take(m.producer_name, mp.producer_name(), [&] { mp.clear_producer_name(); });
  take(m.producer_version, mp.producer_version(), [&] { mp.clear_producer_version(); });
  take(m.domain, mp.domain(), [&] { mp.clear_domain(); });
  take(m.doc_string, mp.doc_string(), [&] { mp.clear_doc_string(); });
  if (mp.model_version() != 0) {
    m.model_version = mp.model_version();
    mp.clear_model_version();
  }
  for (const auto& kv : mp.metadata_props()) m.metadata_props.emplace_back(kv.key(), kv.value());
  mp.clear_metadata_props();
  if (mp.has_graph()) {
    detail::graph_reader reader(opts, cache);
    reader.read(*mp.mutable_graph(), m.main_graph());
    m.had_external_data = reader.read_external();
    mp.clear_graph();
  }
  m.residual = detail::serialize_or_empty(mp);
  m.check_opset_imports();
  return m;
}

/// Builds a ModelProto from `m`. Tensors are copied into it (or, per `plan`, listed for an
/// external file that the caller writes).
inline void model_to_proto(const model& m, proto::ModelProto& mp, detail::write_plan& plan) {
  detail::parse_residual(m.residual, mp, "model");
  if (m.ir_version != 0) mp.set_ir_version(m.ir_version);
  for (const auto& o : m.opset_imports) {
    auto& op = *mp.add_opset_import();
    if (!o.domain.empty() || o.explicit_domain) op.set_domain(o.domain);
    op.set_version(o.version);
  }
  if (!m.producer_name.empty()) mp.set_producer_name(m.producer_name);
  if (!m.producer_version.empty()) mp.set_producer_version(m.producer_version);
  if (!m.domain.empty()) mp.set_domain(m.domain);
  if (m.model_version != 0) mp.set_model_version(m.model_version);
  if (!m.doc_string.empty()) mp.set_doc_string(m.doc_string);
  for (const auto& kv : m.metadata_props) {
    auto& e = *mp.add_metadata_props();
    e.set_key(kv.first);
    e.set_value(kv.second);
  }
  detail::graph_writer writer(plan);
  writer.write(m.main_graph(), *mp.mutable_graph());
}

}  // namespace quench::onnx
