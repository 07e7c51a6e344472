#pragma once
// Folding a per-output-channel affine map y' = s[m] * y + t[m] into the constants of the linear
// operator that produced y (Conv, ConvTranspose, Gemm, MatMul with or without a bias Add).
// Shared by fold_batch_norm and fold_conv_mul_add.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"
#include "quench/graph/graph.hpp"
#include "quench/graph/passes/detail/rewrite.hpp"

namespace quench::detail {

/// A linear operator whose output can absorb a per-channel affine map.
struct linear_site {
  node* op = nullptr;          ///< Conv, ConvTranspose, Gemm or MatMul
  node* bias_add = nullptr;    ///< the Add holding a MatMul's bias, when y is that Add's output
  std::size_t bias_index = 0;  ///< which input of `bias_add` is the bias
  std::int64_t channels = 0;   ///< output channels M
  std::size_t out_rank = 0;    ///< rank of y; 0 when unknown (a MatMul input of unknown rank)
  std::size_t channel_axis = 0;
  dtype type = dtype::undefined;

  /// A bare MatMul has nowhere to put a shift.
  bool can_shift() const noexcept { return !(op->is("MatMul") && !bias_add); }
};

inline std::string shape_text(const tensor& t) { return to_string(t.shape()); }

/// Reads a float32/float64 tensor as doubles.
inline std::vector<double> to_doubles(const tensor& t) {
  std::vector<double> out(t.size());
  if (t.dtype() == dtype::float32) {
    auto v = t.view<float>();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = v[i];
  } else {
    auto v = t.view<double>();
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = v[i];
  }
  return out;
}

/// A tensor of `type` (float32 or float64) and shape `s` holding `values`.
inline tensor from_doubles(dtype type, const shape& s, const std::vector<double>& values) {
  tensor t(type, s);
  if (type == dtype::float32) {
    auto v = t.view<float>();
    for (std::size_t i = 0; i < values.size(); ++i) v[i] = static_cast<float>(values[i]);
  } else {
    auto v = t.view<double>();
    for (std::size_t i = 0; i < values.size(); ++i) v[i] = values[i];
  }
  return t;
}

/// The per-channel values of constant `c` applied to y by broadcasting, or false when `c` is not
/// per output channel (another axis has a size above 1, or broadcasting would change y's shape).
inline bool channel_values(const tensor& c, const linear_site& s, std::vector<double>& out) {
  if (c.dtype() != s.type) return false;
  const std::size_t r = c.rank();
  std::size_t out_rank = s.out_rank, axis = s.channel_axis;
  if (out_rank == 0) {  // y's rank is unknown; its last axis holds the channels
    if (r > 1) return false;
    out_rank = 1;
    axis = 0;
  }
  if (r > out_rank) return false;
  bool per_channel = false;
  for (std::size_t k = 0; k < r; ++k) {
    const std::int64_t d = c.shape()[k];
    if (k + (out_rank - r) == axis && d == s.channels && d != 1) per_channel = true;
    else if (d != 1) return false;
  }
  const std::vector<double> v = to_doubles(c);
  out.assign(static_cast<std::size_t>(s.channels), per_channel ? 0.0 : v[0]);
  if (per_channel) out = v;
  return true;
}

/// Checks an optional per-channel bias input: absent, or a constant [M] of the weight's type.
inline bool bias_ok(const node& op, std::size_t i, std::int64_t m, dtype type, std::string& why) {
  const value* b = op.input(i);
  if (!b) return true;
  const tensor* t = constant_tensor(b);
  if (!t) {
    why = op.context() + ": bias '" + b->name() + "' is not a constant";
    return false;
  }
  if (t->dtype() != type) {
    why = op.context() + ": bias '" + b->name() + "' is " + to_string(t->dtype()) + ", the weight " + to_string(type);
    return false;
  }
  if (t->rank() != 1 || t->shape()[0] != m)
    throw_shape_mismatch(op.context() + " input 'B'", "shape [" + std::to_string(m) + "]", shape_text(*t));
  return true;
}

/// The site producing `y` when y's only consumer could be folded into it. Returns nothing with
/// `why` empty when y's producer is no linear operator, or with `why` saying what blocks it.
inline std::optional<linear_site> find_linear_site(const value& y, bool allow_matmul, std::string& why) {
  why.clear();
  node* p = y.producer();
  if (!p) return std::nullopt;
  const bool conv = p->is("Conv"), convt = p->is("ConvTranspose"), gemm = p->is("Gemm"), matmul = p->is("MatMul");
  const bool add = p->is("Add");
  if (!conv && !convt && !gemm && !(allow_matmul && (matmul || add))) return std::nullopt;
  if (y.is_graph_output() || y.uses().size() != 1 || y.uses()[0].index == use::implicit_use) {
    if (!add) why = "'" + y.name() + "' (output of " + p->context() + ") has other consumers";
    return std::nullopt;
  }
  if (add) {
    // MatMul + Add(bias): the pair is one linear layer with a bias.
    for (std::size_t i = 0; i < 2; ++i) {
      const value* m = p->input(i);
      const value* b = p->input(1 - i);
      if (!m || !b || p->inputs().size() != 2 || !m->producer() || !m->producer()->is("MatMul")) continue;
      const tensor* bt = constant_tensor(b);
      if (!bt) continue;
      std::string ignored;
      auto site = find_linear_site(*m, true, ignored);
      std::vector<double> bias;
      if (!site || site->bias_add || !channel_values(*bt, *site, bias)) continue;
      site->bias_add = p;
      site->bias_index = 1 - i;
      return site;
    }
    return std::nullopt;
  }
  if (p->inputs().size() < 2 || !p->input(0) || !p->input(1))
    throw_error(errc::invalid_model, p->context(), "expected a data input and a weight input");
  const value* w = p->input(1);
  const tensor* wt = constant_tensor(w);
  if (!wt) {
    why = p->context() + ": weight '" + w->name() + "' is not a constant";
    return std::nullopt;
  }
  if (wt->dtype() != dtype::float32 && wt->dtype() != dtype::float64) {
    why = p->context() + ": weight '" + w->name() + "' is " + to_string(wt->dtype()) + " (float and double fold)";
    return std::nullopt;
  }
  linear_site s;
  s.op = p;
  s.type = wt->dtype();
  const shape& ws = wt->shape();
  if (conv || convt) {
    if (ws.rank() < 3)
      throw_shape_mismatch(p->context() + " weight '" + w->name() + "'", "rank >= 3", shape_text(*wt));
    const std::int64_t group = p->attr_int("group", 1);
    if (group < 1) throw_error(errc::invalid_model, p->context(), "group " + std::to_string(group) + " is not positive");
    if (convt && ws[0] % group != 0)
      throw_error(errc::invalid_model, p->context(),
                  "weight '" + w->name() + "' has " + std::to_string(ws[0]) + " input channels, not a multiple of group " +
                      std::to_string(group));
    s.channels = conv ? ws[0] : ws[1] * group;
    s.out_rank = ws.rank();
    s.channel_axis = 1;
    if (!bias_ok(*p, 2, s.channels, s.type, why)) return std::nullopt;
    return s;
  }
  if (ws.rank() != 2) throw_shape_mismatch(p->context() + " weight '" + w->name() + "'", "rank 2", shape_text(*wt));
  if (gemm) {
    s.channels = p->attr_int("transB", 0) ? ws[0] : ws[1];
    s.out_rank = 2;
    s.channel_axis = 1;
    if (const value* c = p->input(2)) {
      const tensor* ct = constant_tensor(c);
      if (!ct) {
        why = p->context() + ": C '" + c->name() + "' is not a constant";
        return std::nullopt;
      }
      const bool last_ok = ct->rank() == 0 || ct->shape()[ct->rank() - 1] == 1 || ct->shape()[ct->rank() - 1] == s.channels;
      if (ct->dtype() != s.type || ct->rank() > 2 || !last_ok) {
        why = p->context() + ": C '" + c->name() + "' (" + to_string(ct->dtype()) + " " + shape_text(*ct) +
              ") does not broadcast per output channel";
        return std::nullopt;
      }
    }
    return s;
  }
  // MatMul with a 2-D constant B: y = A @ B has the channels on its last axis.
  s.channels = ws[1];
  if (const auto& d = p->input(0)->dims()) {
    s.out_rank = d->size() == 1 ? 1 : std::max<std::size_t>(d->size(), 2);
    s.channel_axis = s.out_rank - 1;
  }
  return s;
}

/// Rewrites the site's constants so its output becomes scale[m] * y + shift[m]. The caller then
/// removes the node that applied the map. Weights shared with other nodes are cloned first.
inline void apply_channel_affine(const linear_site& s, const std::vector<double>& scale, const std::vector<double>& shift) {
  node& op = *s.op;
  graph& g = *op.owner();
  const auto m_count = static_cast<std::size_t>(s.channels);
  bool unit_scale = true, zero_shift = true;
  for (std::size_t m = 0; m < m_count; ++m) {
    unit_scale = unit_scale && scale[m] == 1.0;
    zero_shift = zero_shift && shift[m] == 0.0;
  }
  if (!zero_shift && !s.can_shift())
    throw_error(errc::invalid_argument, op.context(), "a MatMul without a bias Add cannot absorb a shift");

  if (!unit_scale) {
    const value& w = *op.input(1);
    const tensor& wt = *constant_tensor(&w);
    std::vector<double> v = to_doubles(wt);
    const shape& ws = wt.shape();
    if (op.is("Conv")) {
      const std::size_t inner = wt.size() / m_count;
      for (std::size_t i = 0; i < v.size(); ++i) v[i] *= scale[i / inner];
    } else if (op.is("ConvTranspose")) {
      // Weight [C_in, M/group, k...]: input channel c belongs to group c / (C_in/group), whose
      // output channels start at group * (M/group).
      const auto group = static_cast<std::size_t>(op.attr_int("group", 1));
      const auto c_in = static_cast<std::size_t>(ws[0]);
      const auto m_per_group = static_cast<std::size_t>(ws[1]);
      const std::size_t c_per_group = c_in / group;
      const std::size_t inner = ws.inner(1);
      for (std::size_t c = 0; c < c_in; ++c)
        for (std::size_t j = 0; j < m_per_group; ++j) {
          const double f = scale[(c / c_per_group) * m_per_group + j];
          double* row = v.data() + (c * m_per_group + j) * inner;
          for (std::size_t k = 0; k < inner; ++k) row[k] *= f;
        }
    } else if (op.is("Gemm") && op.attr_int("transB", 0)) {
      const auto k_count = static_cast<std::size_t>(ws[1]);  // B is [M, K]
      for (std::size_t i = 0; i < v.size(); ++i) v[i] *= scale[i / k_count];
    } else {  // Gemm without transB, MatMul: B is [K, M]
      for (std::size_t i = 0; i < v.size(); ++i) v[i] *= scale[i % m_count];
    }
    set_constant_input(g, op, 1, from_doubles(s.type, ws, v), w.name() + "_folded");
  }
  if ((unit_scale && zero_shift) || !s.can_shift()) return;  // a bare MatMul has no bias to update

  if (op.is("Conv") || op.is("ConvTranspose")) {
    std::vector<double> b(m_count, 0.0);
    std::string base = op.input(1)->name() + "_bias";
    if (const value* bv = op.input(2)) {
      b = to_doubles(*constant_tensor(bv));
      base = bv->name() + "_folded";
    } else if (zero_shift) {
      return;  // no bias, and none needed
    }
    for (std::size_t m = 0; m < m_count; ++m) b[m] = b[m] * scale[m] + shift[m];
    set_constant_input(g, op, 2, from_doubles(s.type, shape{s.channels}, b), base);
    return;
  }
  if (op.is("Gemm")) {
    // y = alpha A'B' + beta C; with B' scaled, the new C' absorbs beta, the scale and the shift,
    // and beta becomes 1.
    const double beta = op.attr_float("beta", 1.f);
    const value* cv = op.input(2);
    if (!cv && zero_shift) return;
    std::size_t rows = 1;
    shape cs{s.channels};
    std::vector<double> c(m_count, 0.0);
    std::size_t c_cols = m_count;
    std::string base = op.input(1)->name() + "_bias";
    if (cv) {
      const tensor& ct = *constant_tensor(cv);
      c = to_doubles(ct);
      base = cv->name() + "_folded";
      c_cols = ct.rank() == 0 ? 1 : static_cast<std::size_t>(ct.shape()[ct.rank() - 1]);
      if (ct.rank() == 2) {
        rows = static_cast<std::size_t>(ct.shape()[0]);
        cs = shape{ct.shape()[0], s.channels};
      }
    }
    std::vector<double> out(rows * m_count);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t m = 0; m < m_count; ++m) {
        const double cval = cv ? beta * c[r * c_cols + (c_cols == 1 ? 0 : m)] : 0.0;
        out[r * m_count + m] = cval * scale[m] + shift[m];
      }
    set_constant_input(g, op, 2, from_doubles(s.type, cs, out), base);
    if (beta != 1.0) op.set_attribute(attribute::make_float("beta", 1.f));
    return;
  }
  // MatMul + Add(bias): the bias grows to [M] (keeping its rank) when it was a broadcast scalar.
  node& add = *s.bias_add;
  const value& bv = *add.input(s.bias_index);
  const tensor& bt = *constant_tensor(&bv);
  std::vector<double> b;
  channel_values(bt, s, b);
  for (std::size_t m = 0; m < m_count; ++m) b[m] = b[m] * scale[m] + shift[m];
  std::vector<std::int64_t> dims(bt.rank() == 0 ? 1 : bt.rank(), 1);
  dims.back() = s.channels;
  graph& ag = *add.owner();
  set_constant_input(ag, add, s.bias_index, from_doubles(s.type, shape(dims), b), bv.name() + "_folded");
}

}  // namespace quench::detail
