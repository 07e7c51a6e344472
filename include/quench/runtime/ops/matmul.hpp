#pragma once
// Matrix products: Gemm, MatMul (batched, numpy broadcasting, 1-D operands), MatMulInteger,
// QLinearMatMul and Einsum. Every product runs through one GEMM over the tensors' row-major
// memory: float32 on an AVX2 or AVX-512 CPU through quench::gemm (runtime-dispatched SIMD
// kernels), everything else through Eigen's; the integer ops accumulate exactly in int32.
//
// Threads: a product is cut into tiles whose bounds depend on the shapes only (never on the
// thread count), and each tile is one GEMM call. Threads only decide who computes which tile, so
// every output element is produced by the same instructions in the same order for any thread
// count: results are bit-identical to one thread. Eigen itself stays single-threaded (quench
// never touches Eigen::setNbThreads, which is global state).

#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "quench/core/tensor.hpp"
#include "quench/numeric/gemm.hpp"
#include "quench/runtime/broadcast.hpp"
#include "quench/runtime/dispatch.hpp"
#include "quench/runtime/op_context.hpp"
#include "quench/runtime/op_registry.hpp"

namespace quench::runtime {

namespace detail {

/// Runs `task(i, worker)` for every i in [0, count) on up to `threads` threads; the calling thread
/// is worker 0. Tasks are handed out dynamically, so callers must make a task's result depend on
/// i only (per-worker scratch memory is fine). An exception in any task is rethrown here after
/// all threads have joined.
template <class F>
void parallel_tasks(std::size_t count, int threads, F&& task) {
  const std::size_t workers = std::min<std::size_t>(count, threads < 1 ? 1 : static_cast<std::size_t>(threads));
  if (workers <= 1) {
    for (std::size_t i = 0; i < count; ++i) task(i, std::size_t{0});
    return;
  }
  std::atomic<std::size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto body = [&](std::size_t worker) {
    try {
      for (std::size_t i; (i = next.fetch_add(1)) < count;) task(i, worker);
    } catch (...) {
      std::lock_guard<std::mutex> lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next.store(count);
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (std::size_t w = 1; w < workers; ++w) {
    try {
      pool.emplace_back(body, w);
    } catch (const std::system_error&) {
      break;  // fewer threads than asked for: the remaining workers take the tasks
    }
  }
  body(0);
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using const_matrix_map = Eigen::Map<const row_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using matrix_map = Eigen::Map<row_matrix<T>, Eigen::Unaligned, Eigen::OuterStride<>>;

/// Scratch memory that Eigen reads, aligned to Eigen's packet size: whether Eigen takes an
/// aligned or a peeled path then never depends on where malloc put a buffer or which worker's
/// buffer a tile landed in, so results are the same bits in every run and for any thread count.
template <class T>
using gemm_scratch = std::vector<T, Eigen::aligned_allocator<T>>;

/// A matrix in row-major memory: element (i, j) of op(X) is p[i * ld + j], or p[j * ld + i] when
/// `trans` (X stored transposed).
template <class T>
struct matrix_operand {
  const T* p;
  std::int64_t ld;
  bool trans;
};

/// c[m x n] = alpha * op(a)[m x k] * op(b)[k x n], or c += that with `accumulate`. One call of
/// Eigen's GEMM: the unit of work that threads never split.
template <class T>
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, T alpha, matrix_operand<T> a, matrix_operand<T> b, T* c,
          std::int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if constexpr (!std::is_same_v<T, float> && !std::is_same_v<T, double> && !std::is_same_v<T, std::int32_t>) {
    // The wide integer types (shape arithmetic, rarely large) take a plain loop: it keeps Eigen's
    // GEMM instantiated for the three types that carry real work only.
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        T acc = T(0);
        for (std::int64_t q = 0; q < k; ++q) {
          const T x = a.trans ? a.p[q * a.ld + i] : a.p[i * a.ld + q];
          const T y = b.trans ? b.p[j * b.ld + q] : b.p[q * b.ld + j];
          acc = static_cast<T>(acc + x * y);
        }
        T& out = c[i * ldc + j];
        out = static_cast<T>((accumulate ? out : T(0)) + alpha * acc);
      }
    return;
  } else {
  if constexpr (std::is_same_v<T, float>) {
    // With AVX2 or AVX-512 quench's own GEMM (quench/numeric/gemm.hpp: Eigen would run SSE2
    // unless the program was compiled for the newer target); Eigen remains the portable path.
    if (best_simd_target() != simd_target::scalar) {
      quench::gemm(m, n, k, alpha, {a.p, a.ld, a.trans}, {b.p, b.ld, b.trans}, c, ldc, accumulate);
      return;
    }
  }
  matrix_map<T> out(c, m, n, Eigen::OuterStride<>(ldc));
  // Always C += alpha A B (one instantiation per transpose combination); zero C first when the
  // product replaces it.
  if (!accumulate) out.setZero();
  if (k <= 0) return;
  auto product = [&](const auto& x, const auto& y) { out.noalias() += alpha * x * y; };
  const_matrix_map<T> x = a.trans ? const_matrix_map<T>(a.p, k, m, Eigen::OuterStride<>(a.ld))
                                  : const_matrix_map<T>(a.p, m, k, Eigen::OuterStride<>(a.ld));
  const_matrix_map<T> y = b.trans ? const_matrix_map<T>(b.p, n, k, Eigen::OuterStride<>(b.ld))
                                  : const_matrix_map<T>(b.p, k, n, Eigen::OuterStride<>(b.ld));
  if (!a.trans && !b.trans) product(x, y);
  else if (a.trans && !b.trans) product(x.transpose(), y);
  else if (!a.trans && b.trans) product(x, y.transpose());
  else product(x.transpose(), y.transpose());
  }
}

/// Tile bounds for splitting products between threads: multiples of Eigen's register blocking
/// (12 x 4 floats with SSE, 24 x 4 with AVX) and large enough that repacking an operand per
/// tile costs well under 1% of the multiply-adds.
inline constexpr std::int64_t gemm_tile_rows = 192;
inline constexpr std::int64_t gemm_tile_cols = 384;

/// A batch of independent products C_i = alpha op(A_i) op(B_i) (+ C_i), all m x n x k, with
/// element offsets per batch entry.
template <class T>
struct gemm_batch {
  std::int64_t m = 0, n = 0, k = 0;
  T alpha = T(1);
  bool accumulate = false;
  const T* a = nullptr;
  std::int64_t lda = 0;
  bool trans_a = false;
  const T* b = nullptr;
  std::int64_t ldb = 0;
  bool trans_b = false;
  T* c = nullptr;
  std::int64_t ldc = 0;
  std::vector<std::int64_t> a_offsets, b_offsets, c_offsets;
};

/// Runs every product of `g`, tiled by gemm_tile_rows x gemm_tile_cols blocks of C.
template <class T>
void run_gemm_batch(const gemm_batch<T>& g, int threads) {
  if (g.m <= 0 || g.n <= 0) return;
  const std::int64_t row_tiles = (g.m + gemm_tile_rows - 1) / gemm_tile_rows;
  const std::int64_t col_tiles = (g.n + gemm_tile_cols - 1) / gemm_tile_cols;
  const std::int64_t per_batch = row_tiles * col_tiles;
  const std::size_t count = g.c_offsets.size() * static_cast<std::size_t>(per_batch);
  parallel_tasks(count, threads, [&](std::size_t task, std::size_t) {
    const auto t = static_cast<std::int64_t>(task);
    const std::size_t bi = static_cast<std::size_t>(t / per_batch);
    const std::int64_t i0 = (t % per_batch) / col_tiles * gemm_tile_rows;
    const std::int64_t j0 = (t % col_tiles) * gemm_tile_cols;
    const std::int64_t mi = std::min(gemm_tile_rows, g.m - i0);
    const std::int64_t nj = std::min(gemm_tile_cols, g.n - j0);
    const T* a = g.a + g.a_offsets[bi] + (g.trans_a ? i0 : i0 * g.lda);
    const T* b = g.b + g.b_offsets[bi] + (g.trans_b ? j0 * g.ldb : j0);
    T* c = g.c + g.c_offsets[bi] + i0 * g.ldc + j0;
    gemm<T>(mi, nj, g.k, g.alpha, {a, g.lda, g.trans_a}, {b, g.ldb, g.trans_b}, c, g.ldc, g.accumulate);
  });
}

/// Calls `f(T{})` for the element types MatMul, Gemm and Einsum accept.
template <class F>
decltype(auto) visit_matmul_type(dtype t, const op_context& ctx, F&& f) {
  switch (t) {
    case dtype::float32: return f(float{});
    case dtype::float64: return f(double{});
    case dtype::int32: return f(std::int32_t{});
    case dtype::int64: return f(std::int64_t{});
    case dtype::uint32: return f(std::uint32_t{});
    case dtype::uint64: return f(std::uint64_t{});
    default: ctx.fail(errc::unsupported_dtype, "element type " + to_string(t) + " is not supported by this kernel");
  }
}
inline constexpr std::uint32_t matmul_types = types::floats | types::bit(dtype::int32) | types::bit(dtype::int64) |
                                               types::bit(dtype::uint32) | types::bit(dtype::uint64);

/// Shapes and per-batch offsets of numpy-style matmul (ONNX MatMul): 1-D operands are promoted
/// to a row (A) or column (B) and the promoted axis is dropped from the output.
struct matmul_plan {
  std::int64_t m = 0, k = 0, n = 0;
  shape out;
  std::vector<std::int64_t> a_offsets, b_offsets, c_offsets;
};

inline matmul_plan plan_matmul(const op_context& ctx, const shape& as, const shape& bs) {
  if (as.rank() == 0 || bs.rank() == 0)
    ctx.fail(errc::shape_mismatch, "expects operands of rank >= 1, found " + to_string(as) + " and " + to_string(bs));
  matmul_plan p;
  const bool a_vec = as.rank() == 1, b_vec = bs.rank() == 1;
  p.m = a_vec ? 1 : as[as.rank() - 2];
  p.k = as[as.rank() - 1];
  const std::int64_t kb = b_vec ? bs[0] : bs[bs.rank() - 2];
  p.n = b_vec ? 1 : bs[bs.rank() - 1];
  if (p.k != kb)
    throw_shape_mismatch(ctx.node().context(), "inner dimensions to agree",
                         to_string(as) + " x " + to_string(bs) + " (" + std::to_string(p.k) + " vs " + std::to_string(kb) + ")");
  const shape a_batch(as.begin(), as.end() - std::min<std::ptrdiff_t>(2, static_cast<std::ptrdiff_t>(as.rank())));
  const shape b_batch(bs.begin(), bs.end() - std::min<std::ptrdiff_t>(2, static_cast<std::ptrdiff_t>(bs.rank())));
  const shape batch = broadcast_shapes({&a_batch, &b_batch}, ctx.node().context());
  std::vector<std::int64_t> dims = batch.dims();
  if (!a_vec) dims.push_back(p.m);
  if (!b_vec) dims.push_back(p.n);
  p.out = shape(std::move(dims));

  const std::size_t batches = batch.numel();
  if (b_batch.numel() == 1 && a_batch.numel() == batches) {
    // B is one matrix and A's batches are stacked rows: one product of (batch * m) x k.
    p.m *= static_cast<std::int64_t>(batches);
    p.a_offsets = p.b_offsets = p.c_offsets = {0};
    return p;
  }
  const auto sa = broadcast_strides(a_batch, batch), sb = broadcast_strides(b_batch, batch);
  std::vector<std::int64_t> idx(batch.rank(), 0);
  std::int64_t oa = 0, ob = 0;
  for (std::size_t i = 0; i < batches; ++i) {
    p.a_offsets.push_back(oa * p.m * p.k);
    p.b_offsets.push_back(ob * p.k * p.n);
    p.c_offsets.push_back(static_cast<std::int64_t>(i) * p.m * p.n);
    for (std::size_t ax = batch.rank(); ax-- > 0;) {
      oa += static_cast<std::int64_t>(sa[ax]);
      ob += static_cast<std::int64_t>(sb[ax]);
      if (++idx[ax] < batch[ax]) break;
      oa -= static_cast<std::int64_t>(sa[ax]) * idx[ax];
      ob -= static_cast<std::int64_t>(sb[ax]) * idx[ax];
      idx[ax] = 0;
    }
  }
  return p;
}

template <class T>
tensor matmul_typed(const op_context& ctx, const T* a, const shape& as, const T* b, const shape& bs) {
  matmul_plan p = plan_matmul(ctx, as, bs);
  tensor out = tensor::uninitialized(dtype_of_v<T>, p.out);  // every element is written
  gemm_batch<T> g;
  g.m = p.m;
  g.n = p.n;
  g.k = p.k;
  g.a = a;
  g.lda = p.k;
  g.b = b;
  g.ldb = p.n;
  g.c = out.view<T>().data();
  g.ldc = p.n;
  g.a_offsets = std::move(p.a_offsets);
  g.b_offsets = std::move(p.b_offsets);
  g.c_offsets = std::move(p.c_offsets);
  run_gemm_batch(g, ctx.threads());
  return out;
}

inline void run_matmul(op_context& ctx) {
  const tensor& a = ctx.required_input(0);
  const tensor& b = ctx.required_input(1);
  if (a.dtype() != b.dtype())
    ctx.fail(errc::dtype_mismatch, "inputs have different element types " + to_string(a.dtype()) + " and " + to_string(b.dtype()));
  ctx.set_output(0, visit_matmul_type(a.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    return matmul_typed<T>(ctx, a.view<T>().data(), a.shape(), b.view<T>().data(), b.shape());
  }));
}

inline void check_gemm(const node& n, std::int64_t) {
  for (const char* a : {"transA", "transB"}) {
    const std::int64_t v = n.attr_int(a, 0);
    if (v != 0 && v != 1)
      throw_error(errc::invalid_model, n.context(), std::string("attribute ") + a + " must be 0 or 1, found " + std::to_string(v));
  }
}

/// Y = alpha * op(A) * op(B) + beta * C, C broadcast unidirectionally to [M, N] (before opset 7
/// only with the `broadcast` attribute; otherwise C must be M x N).
inline void run_gemm(op_context& ctx) {
  const tensor& a = ctx.required_input(0);
  const tensor& b = ctx.required_input(1);
  const tensor* c = ctx.input(2);
  if (a.dtype() != b.dtype() || (c && c->dtype() != a.dtype()))
    ctx.fail(errc::dtype_mismatch, "inputs must share one element type, found " + to_string(a.dtype()) + ", " +
                                       to_string(b.dtype()) + (c ? ", " + to_string(c->dtype()) : std::string()));
  if (a.rank() != 2 || b.rank() != 2)
    ctx.fail(errc::shape_mismatch, "expects 2-D A and B, found " + to_string(a.shape()) + " and " + to_string(b.shape()));
  const bool ta = ctx.node().attr_int("transA", 0) != 0, tb = ctx.node().attr_int("transB", 0) != 0;
  const float alpha = ctx.node().attr_float("alpha", 1.f), beta = ctx.node().attr_float("beta", 1.f);
  const std::int64_t m = ta ? a.shape()[1] : a.shape()[0], k = ta ? a.shape()[0] : a.shape()[1];
  const std::int64_t kb = tb ? b.shape()[1] : b.shape()[0], n = tb ? b.shape()[0] : b.shape()[1];
  if (k != kb)
    throw_shape_mismatch(ctx.node().context(), "inner dimensions to agree (transA=" + std::to_string(ta) + ", transB=" + std::to_string(tb) + ")",
                         to_string(a.shape()) + " x " + to_string(b.shape()));
  const shape ys{m, n};
  const bool use_c = c && beta != 0.f;
  if (use_c) {
    bool ok = c->rank() <= 2;
    for (std::size_t i = 0; ok && i < c->rank(); ++i) {
      const std::int64_t d = c->shape()[i], want = ys[2 - c->rank() + i];
      ok = d == want || d == 1;
    }
    if (ok && ctx.opset() < 7 && ctx.node().attr_int("broadcast", 0) == 0) ok = c->shape() == ys;
    if (!ok)
      throw_shape_mismatch(ctx.node().context(), "C broadcastable to " + to_string(ys) +
                                                     (ctx.opset() < 7 && ctx.node().attr_int("broadcast", 0) == 0 ? " (equal: broadcast=0)" : ""),
                           to_string(c->shape()));
  }
  ctx.set_output(0, visit_matmul_type(a.dtype(), ctx, [&](auto tag) {
    using T = decltype(tag);
    tensor y(a.dtype(), ys);
    T* py = y.view<T>().data();
    if (use_c) {
      const T* pc = c->view<T>().data();
      const auto st = broadcast_strides(c->shape(), ys);
      const T bt = static_cast<T>(beta);
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j)
          py[i * n + j] = static_cast<T>(bt * pc[static_cast<std::size_t>(i) * st[0] + static_cast<std::size_t>(j) * st[1]]);
    }
    gemm_batch<T> g;
    g.m = m;
    g.n = n;
    g.k = k;
    g.alpha = static_cast<T>(alpha);
    g.accumulate = use_c;
    g.a = a.view<T>().data();
    g.lda = a.shape()[1];
    g.trans_a = ta;
    g.b = b.view<T>().data();
    g.ldb = b.shape()[1];
    g.trans_b = tb;
    g.c = py;
    g.ldc = n;
    g.a_offsets = g.b_offsets = g.c_offsets = {0};
    run_gemm_batch(g, ctx.threads());
    return y;
  }));
}

/// int32(x) - int32(zero_point), the zero point broadcast to x. A 1-D zero point of x's row
/// count with `per_row` applies along axis -2 (MatMulInteger's per-row form of A).
inline tensor minus_zero_point(const op_context& ctx, const tensor& x, const tensor* zp, bool per_row, const char* what) {
  if (x.dtype() != dtype::uint8 && x.dtype() != dtype::int8)
    ctx.fail(errc::unsupported_dtype, std::string(what) + ": expected uint8 or int8, found " + to_string(x.dtype()));
  tensor out(dtype::int32, x.shape());
  std::int32_t* po = out.view<std::int32_t>().data();
  auto load = [&](const tensor& t, auto tag) {
    using Q = decltype(tag);
    return t.view<Q>().data();
  };
  if (zp && zp->dtype() != x.dtype())
    ctx.fail(errc::dtype_mismatch, std::string(what) + " zero point: expected " + to_string(x.dtype()) + ", found " + to_string(zp->dtype()));
  auto body = [&](auto tag) {
    using Q = decltype(tag);
    const Q* px = load(x, tag);
    if (!zp || zp->size() == 1) {
      const std::int32_t z = zp ? static_cast<std::int32_t>(load(*zp, tag)[0]) : 0;
      for (std::size_t i = 0; i < x.size(); ++i) po[i] = static_cast<std::int32_t>(px[i]) - z;
      return;
    }
    shape zs = zp->shape();
    if (per_row && zs.rank() == 1 && x.rank() >= 2 && zs[0] == x.shape()[x.rank() - 2]) zs = shape{zs[0], 1};
    bool ok = zs.rank() <= x.rank();
    for (std::size_t i = 0; ok && i < zs.rank(); ++i) {
      const std::int64_t d = zs[i], want = x.shape()[x.rank() - zs.rank() + i];
      ok = d == want || d == 1;
    }
    if (!ok) throw_shape_mismatch(ctx.node().context(), std::string(what) + " zero point broadcastable to " + to_string(x.shape()), to_string(zp->shape()));
    const Q* pz = load(*zp, tag);
    const std::vector<std::size_t> strides[2] = {broadcast_strides(x.shape(), x.shape()), broadcast_strides(zs, x.shape())};
    for_each_broadcast_run(x.shape(), strides, [&](std::size_t o, const std::size_t* in, std::size_t cnt, const std::size_t* st) {
      for (std::size_t j = 0; j < cnt; ++j)
        po[o + j] = static_cast<std::int32_t>(px[in[0] + j]) - static_cast<std::int32_t>(pz[in[1] + j * st[1]]);
    });
  };
  if (x.dtype() == dtype::uint8) body(std::uint8_t{});
  else body(std::int8_t{});
  return out;
}

inline tensor matmul_integer(const op_context& ctx, const tensor& a, const tensor* a_zp, const tensor& b, const tensor* b_zp) {
  const tensor ai = minus_zero_point(ctx, a, a_zp, true, "A");
  const tensor bi = minus_zero_point(ctx, b, b_zp, false, "B");
  return matmul_typed<std::int32_t>(ctx, ai.view<std::int32_t>().data(), ai.shape(), bi.view<std::int32_t>().data(), bi.shape());
}

inline void run_matmul_integer(op_context& ctx) {
  ctx.set_output(0, matmul_integer(ctx, ctx.required_input(0), ctx.input(2), ctx.required_input(1), ctx.input(3)));
}

/// Scalar float of a scale tensor (float32), checked positive and finite.
inline std::vector<float> read_scales(const op_context& ctx, const tensor& s, const char* what) {
  if (s.dtype() != dtype::float32)
    ctx.fail(errc::unsupported_dtype, std::string(what) + ": expected float scale, found " + to_string(s.dtype()));
  const auto v = s.view<float>();
  std::vector<float> out(v.begin(), v.end());
  for (float x : out)
    if (!(x > 0.f) || !std::isfinite(x)) ctx.fail(errc::invalid_value, std::string(what) + ": scales must be finite and > 0");
  return out;
}

/// ONNX Runtime's requantization (MlasRequantizeOutput): float(acc) * scale, rounded half to
/// even, plus the zero point, saturated to the output type.
template <class Q>
Q requantize(std::int32_t acc, float scale, std::int32_t zero_point) {
  const float lo = static_cast<float>(std::numeric_limits<Q>::min() - zero_point);
  const float hi = static_cast<float>(std::numeric_limits<Q>::max() - zero_point);
  const float v = std::min(std::max(static_cast<float>(acc) * scale, lo), hi);
  return static_cast<Q>(static_cast<std::int32_t>(std::nearbyint(v)) + zero_point);
}

/// Zero points as int32 (uint8/int8 tensor, or all 0 when omitted).
inline std::vector<std::int32_t> read_zero_points(const op_context& ctx, const tensor* zp, std::size_t count, const char* what) {
  if (!zp) return std::vector<std::int32_t>(count, 0);
  std::vector<std::int32_t> out;
  if (zp->dtype() == dtype::uint8)
    for (auto v : zp->view<std::uint8_t>()) out.push_back(v);
  else if (zp->dtype() == dtype::int8)
    for (auto v : zp->view<std::int8_t>()) out.push_back(v);
  else
    ctx.fail(errc::unsupported_dtype, std::string(what) + ": expected uint8 or int8 zero point, found " + to_string(zp->dtype()));
  return out;
}

inline void run_qlinear_matmul(op_context& ctx) {
  const tensor& a = ctx.required_input(0);
  const tensor& b = ctx.required_input(3);
  const tensor* y_zp = ctx.input(7);
  const tensor acc = matmul_integer(ctx, a, ctx.input(2), b, ctx.input(5));
  const auto a_scale = read_scales(ctx, ctx.required_input(1), "a_scale");
  const auto b_scale = read_scales(ctx, ctx.required_input(4), "b_scale");
  const auto y_scale = read_scales(ctx, ctx.required_input(6), "y_scale");
  const dtype yt = y_zp ? y_zp->dtype() : a.dtype();
  const std::int64_t m = a.rank() == 1 ? 1 : a.shape()[a.rank() - 2];
  const std::int64_t n = b.rank() == 1 ? 1 : b.shape()[b.rank() - 1];
  // Per-row (a, y: axis -2 of A) and per-column (b: last axis of B) parameters, or one each.
  auto check_count = [&](std::size_t count, std::int64_t want, const char* what) {
    if (count != 1 && static_cast<std::int64_t>(count) != want)
      ctx.fail(errc::shape_mismatch, std::string(what) + ": expected 1 or " + std::to_string(want) + " values, found " + std::to_string(count));
  };
  check_count(a_scale.size(), m, "a_scale");
  check_count(b_scale.size(), n, "b_scale");
  check_count(y_scale.size(), m, "y_scale");
  const auto y_zps = read_zero_points(ctx, y_zp, 1, "y_zero_point");
  check_count(y_zps.size(), m, "y_zero_point");
  tensor y(yt, acc.shape());
  const auto pa = acc.view<std::int32_t>();
  auto body = [&](auto tag) {
    using Q = decltype(tag);
    Q* py = y.view<Q>().data();
    for (std::size_t i = 0; i < pa.size(); ++i) {
      const std::size_t row = static_cast<std::size_t>(static_cast<std::int64_t>(i) / n % m);
      const std::size_t col = static_cast<std::size_t>(static_cast<std::int64_t>(i) % n);
      const std::size_t ra = a_scale.size() == 1 ? 0 : row, cb = b_scale.size() == 1 ? 0 : col;
      const std::size_t ry = y_scale.size() == 1 ? 0 : row, rz = y_zps.size() == 1 ? 0 : row;
      const float scale = a_scale[ra] * b_scale[cb] / y_scale[ry];
      py[i] = requantize<Q>(pa[i], scale, y_zps[rz]);
    }
  };
  if (yt == dtype::uint8) body(std::uint8_t{});
  else if (yt == dtype::int8) body(std::int8_t{});
  else ctx.fail(errc::unsupported_dtype, "output element type " + to_string(yt) + " is not supported");
  ctx.set_output(0, std::move(y));
}

// ---- Einsum ------------------------------------------------------------------------------
//
// Operands are strided views with one label per axis. Repeated labels (diagonals) and
// broadcasting are stride changes; labels used nowhere else are summed out; the remaining
// operands are contracted pairwise, left to right, as batched GEMMs
// [batch, free_a, contracted] x [batch, contracted, free_b], copying an operand only when its
// memory is not already in one of the two layouts Eigen can read directly.

/// Label ids: the ASCII code of a letter, or ellipsis_label + i for the i-th ellipsis axis.
inline constexpr int ellipsis_label = 256;

struct einsum_spec {
  std::vector<std::vector<int>> inputs;
  std::vector<int> output;
};

inline einsum_spec parse_einsum(const op_context& ctx, const std::string& equation, const std::vector<std::size_t>& ranks) {
  std::string eq;
  for (char ch : equation)
    if (ch != ' ' && ch != '\t') eq += ch;
  auto bad = [&](const std::string& why) -> void { ctx.fail(errc::invalid_model, "equation '" + equation + "': " + why); };
  const auto arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  const bool explicit_out = arrow != std::string::npos;
  std::vector<std::string> terms(1);
  for (char ch : lhs) {
    if (ch == ',') terms.emplace_back();
    else terms.back() += ch;
  }
  if (terms.size() != ranks.size())
    bad(std::to_string(terms.size()) + " operand term(s) for " + std::to_string(ranks.size()) + " input(s)");
  // Letters of a term, with "..." as -1.
  auto letters = [&](const std::string& t) {
    std::vector<int> out;
    for (std::size_t i = 0; i < t.size(); ++i) {
      if (t.compare(i, 3, "...") == 0) {
        if (std::find(out.begin(), out.end(), -1) != out.end()) bad("more than one ellipsis in a term");
        out.push_back(-1);
        i += 2;
      } else if ((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z')) {
        out.push_back(static_cast<unsigned char>(t[i]));
      } else {
        bad(std::string("unexpected character '") + t[i] + "'");
      }
    }
    return out;
  };
  einsum_spec s;
  std::vector<std::vector<int>> raw;
  std::size_t ellipsis_rank = 0;
  bool any_ellipsis = false;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    raw.push_back(letters(terms[i]));
    const bool has = std::find(raw[i].begin(), raw[i].end(), -1) != raw[i].end();
    const std::size_t named = raw[i].size() - (has ? 1 : 0);
    if (named > ranks[i] || (!has && named != ranks[i]))
      bad("term '" + terms[i] + "' does not match input " + std::to_string(i) + " of rank " + std::to_string(ranks[i]));
    if (has) {
      any_ellipsis = true;
      ellipsis_rank = std::max(ellipsis_rank, ranks[i] - named);
    }
  }
  for (std::size_t i = 0; i < raw.size(); ++i) {
    std::vector<int> labels;
    const std::size_t named = raw[i].size() - (std::find(raw[i].begin(), raw[i].end(), -1) != raw[i].end() ? 1 : 0);
    const std::size_t e = ranks[i] - named;
    for (int l : raw[i]) {
      if (l != -1) {
        labels.push_back(l);
        continue;
      }
      // Ellipsis axes align from the right across operands, as numpy broadcasting does.
      for (std::size_t j = 0; j < e; ++j) labels.push_back(ellipsis_label + static_cast<int>(ellipsis_rank - e + j));
    }
    s.inputs.push_back(std::move(labels));
  }
  if (explicit_out) {
    for (int l : letters(eq.substr(arrow + 2))) {
      if (l == -1) {
        for (std::size_t j = 0; j < ellipsis_rank; ++j) s.output.push_back(ellipsis_label + static_cast<int>(j));
        continue;
      }
      if (std::find(s.output.begin(), s.output.end(), l) != s.output.end())
        bad(std::string("output label '") + static_cast<char>(l) + "' repeated");
      bool found = false;
      for (const auto& in : s.inputs) found = found || std::find(in.begin(), in.end(), l) != in.end();
      if (!found) bad(std::string("output label '") + static_cast<char>(l) + "' is in no input");
      s.output.push_back(l);
    }
  } else {
    // Implicit output: the ellipsis axes, then the letters used exactly once, in ASCII order.
    if (any_ellipsis)
      for (std::size_t j = 0; j < ellipsis_rank; ++j) s.output.push_back(ellipsis_label + static_cast<int>(j));
    for (int l = 0; l < 128; ++l) {
      std::size_t uses = 0;
      for (const auto& in : s.inputs) uses += static_cast<std::size_t>(std::count(in.begin(), in.end(), l));
      if (uses == 1) s.output.push_back(l);
    }
  }
  return s;
}

template <class T>
struct einsum_operand {
  const T* p = nullptr;
  std::vector<int> labels;
  std::vector<std::int64_t> dims, strides;
  std::shared_ptr<gemm_scratch<T>> storage;  ///< owns p for intermediates

  std::int64_t dim_of(int label) const {
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (labels[i] == label) return dims[i];
    return 1;
  }
  bool has(int label) const { return std::find(labels.begin(), labels.end(), label) != labels.end(); }
};

/// Copies the strided view (dims, strides over src) into dst, row-major.
template <class T>
void gather_strided(const T* src, const std::vector<std::int64_t>& dims, const std::vector<std::int64_t>& strides, T* dst) {
  std::int64_t total = 1;
  for (auto d : dims) total *= d;
  if (total == 0) return;
  if (dims.empty()) {
    *dst = *src;
    return;
  }
  const std::size_t r = dims.size();
  const std::int64_t inner = dims[r - 1], inner_stride = strides[r - 1];
  std::vector<std::int64_t> idx(r, 0);
  std::int64_t off = 0;
  for (std::int64_t base = 0; base < total; base += inner) {
    const T* s = src + off;
    if (inner_stride == 1) std::copy(s, s + inner, dst + base);
    else
      for (std::int64_t j = 0; j < inner; ++j) dst[base + j] = s[j * inner_stride];
    for (std::size_t ax = r - 1; ax-- > 0;) {
      off += strides[ax];
      if (++idx[ax] < dims[ax]) break;
      off -= strides[ax] * idx[ax];
      idx[ax] = 0;
    }
  }
}

template <class T>
einsum_operand<T> contiguous_operand(std::vector<int> labels, std::vector<std::int64_t> dims, std::shared_ptr<gemm_scratch<T>> data) {
  einsum_operand<T> o;
  o.labels = std::move(labels);
  o.dims = std::move(dims);
  o.strides.assign(o.dims.size(), 1);
  for (std::size_t i = o.dims.size(); i-- > 1;) o.strides[i - 1] = o.strides[i] * o.dims[i];
  o.storage = std::move(data);
  o.p = o.storage->data();
  return o;
}

/// The axes of `o` listed in `order` (every label of o, once), as a strided view.
template <class T>
void reorder(const einsum_operand<T>& o, const std::vector<int>& order, std::vector<std::int64_t>& dims, std::vector<std::int64_t>& strides) {
  dims.clear();
  strides.clear();
  for (int l : order)
    for (std::size_t i = 0; i < o.labels.size(); ++i)
      if (o.labels[i] == l) {
        dims.push_back(o.dims[i]);
        strides.push_back(o.strides[i]);
      }
}

/// Whether `o` read in `order` is plain row-major memory starting at o.p.
template <class T>
bool is_packed(const einsum_operand<T>& o, const std::vector<int>& order) {
  std::vector<std::int64_t> dims, strides;
  reorder(o, order, dims, strides);
  std::int64_t expect = 1;
  for (std::size_t i = dims.size(); i-- > 0;) {
    if (dims[i] != 1 && strides[i] != expect) return false;
    expect *= dims[i];
  }
  return true;
}

template <class T>
einsum_operand<T> materialize(const einsum_operand<T>& o, const std::vector<int>& order) {
  std::vector<std::int64_t> dims, strides;
  reorder(o, order, dims, strides);
  std::int64_t total = 1;
  for (auto d : dims) total *= d;
  auto data = std::make_shared<gemm_scratch<T>>(static_cast<std::size_t>(total));
  gather_strided(o.p, dims, strides, data->data());
  return contiguous_operand<T>(order, std::move(dims), std::move(data));
}

/// Sums `o` over every label not in `keep`.
template <class T>
einsum_operand<T> sum_out(const einsum_operand<T>& o, const std::vector<int>& keep) {
  std::vector<int> kept, summed;
  for (int l : o.labels) (std::find(keep.begin(), keep.end(), l) != keep.end() ? kept : summed).push_back(l);
  if (summed.empty()) return o;
  std::vector<int> order = kept;
  order.insert(order.end(), summed.begin(), summed.end());
  const einsum_operand<T> m = materialize(o, order);
  std::int64_t rows = 1, cols = 1;
  std::vector<std::int64_t> kept_dims;
  for (int l : kept) {
    kept_dims.push_back(o.dim_of(l));
    rows *= kept_dims.back();
  }
  for (int l : summed) cols *= o.dim_of(l);
  auto data = std::make_shared<gemm_scratch<T>>(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    T acc = T(0);
    for (std::int64_t c = 0; c < cols; ++c) acc = static_cast<T>(acc + m.p[r * cols + c]);
    (*data)[static_cast<std::size_t>(r)] = acc;
  }
  return contiguous_operand<T>(std::move(kept), std::move(kept_dims), std::move(data));
}

/// Merges repeated labels of one operand into its diagonal (a stride change, no copy).
template <class T>
einsum_operand<T> take_diagonals(const op_context& ctx, einsum_operand<T> o) {
  einsum_operand<T> d;
  d.p = o.p;
  d.storage = o.storage;
  for (std::size_t i = 0; i < o.labels.size(); ++i) {
    auto it = std::find(d.labels.begin(), d.labels.end(), o.labels[i]);
    if (it == d.labels.end()) {
      d.labels.push_back(o.labels[i]);
      d.dims.push_back(o.dims[i]);
      d.strides.push_back(o.strides[i]);
      continue;
    }
    const std::size_t j = static_cast<std::size_t>(it - d.labels.begin());
    if (d.dims[j] != o.dims[i]) ctx.fail(errc::shape_mismatch, "Einsum: a repeated label has different sizes " + std::to_string(d.dims[j]) + " and " + std::to_string(o.dims[i]));
    d.strides[j] += o.strides[i];
  }
  return d;
}

/// Contracts a with b, keeping the labels in `keep`; the result's labels are
/// [batch..., free_a..., free_b...].
template <class T>
einsum_operand<T> contract(const op_context& ctx, einsum_operand<T> a, einsum_operand<T> b, const std::vector<int>& keep) {
  auto needed = [&](const einsum_operand<T>& self, const einsum_operand<T>& other) {
    std::vector<int> k = keep;
    k.insert(k.end(), other.labels.begin(), other.labels.end());
    return sum_out(self, k);
  };
  a = needed(a, b);
  b = needed(b, a);
  std::vector<int> batch, contracted, free_a, free_b;
  for (int l : a.labels) {
    const bool in_keep = std::find(keep.begin(), keep.end(), l) != keep.end();
    if (b.has(l)) (in_keep ? batch : contracted).push_back(l);
    else free_a.push_back(l);
  }
  for (int l : b.labels)
    if (!a.has(l)) free_b.push_back(l);
  // Shared labels broadcast a size-1 side (ellipsis axes) by a zero stride.
  for (int l : a.labels) {
    if (!b.has(l)) continue;
    const std::int64_t da = a.dim_of(l), db = b.dim_of(l);
    if (da == db) continue;
    if (da != 1 && db != 1)
      ctx.fail(errc::shape_mismatch, "Einsum: label sizes " + std::to_string(da) + " and " + std::to_string(db) + " do not broadcast");
    einsum_operand<T>& small = da == 1 ? a : b;
    for (std::size_t i = 0; i < small.labels.size(); ++i)
      if (small.labels[i] == l) {
        small.dims[i] = std::max(da, db);
        small.strides[i] = 0;
      }
  }
  auto product = [&](const std::vector<int>& ls, const einsum_operand<T>& o) {
    std::int64_t p = 1;
    for (int l : ls) p *= o.dim_of(l);
    return p;
  };
  const std::int64_t nb = product(batch, a), m = product(free_a, a), k = product(contracted, a), n = product(free_b, b);
  auto cat = [](std::initializer_list<const std::vector<int>*> parts) {
    std::vector<int> out;
    for (const auto* p : parts) out.insert(out.end(), p->begin(), p->end());
    return out;
  };
  // A as [batch, m, k] or, read transposed, [batch, k, m]; B as [batch, k, n] or [batch, n, k].
  bool ta = false, tb = false;
  if (!is_packed(a, cat({&batch, &free_a, &contracted}))) {
    if (is_packed(a, cat({&batch, &contracted, &free_a}))) ta = true;
    else a = materialize(a, cat({&batch, &free_a, &contracted}));
  }
  if (!is_packed(b, cat({&batch, &contracted, &free_b}))) {
    if (is_packed(b, cat({&batch, &free_b, &contracted}))) tb = true;
    else b = materialize(b, cat({&batch, &contracted, &free_b}));
  }
  std::vector<int> labels = cat({&batch, &free_a, &free_b});
  std::vector<std::int64_t> dims;
  for (int l : labels) dims.push_back(a.has(l) ? a.dim_of(l) : b.dim_of(l));
  auto data = std::make_shared<gemm_scratch<T>>(static_cast<std::size_t>(nb * m * n));
  gemm_batch<T> g;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a.p;
  g.lda = ta ? m : k;
  g.trans_a = ta;
  g.b = b.p;
  g.ldb = tb ? k : n;
  g.trans_b = tb;
  g.c = data->data();
  g.ldc = n;
  for (std::int64_t i = 0; i < nb; ++i) {
    g.a_offsets.push_back(i * m * k);
    g.b_offsets.push_back(i * k * n);
    g.c_offsets.push_back(i * m * n);
  }
  run_gemm_batch(g, ctx.threads());
  return contiguous_operand<T>(std::move(labels), std::move(dims), std::move(data));
}

inline void check_einsum(const node& n, std::int64_t) {
  if (!n.find_attribute("equation")) throw_error(errc::invalid_model, n.context(), "Einsum requires the 'equation' attribute");
}

inline void run_einsum(op_context& ctx) {
  const std::string equation = ctx.node().attr_string("equation", "");
  if (ctx.input_count() == 0) ctx.fail(errc::invalid_model, "needs at least one input");
  std::vector<std::size_t> ranks;
  const dtype t = ctx.required_input(0).dtype();
  for (std::size_t i = 0; i < ctx.input_count(); ++i) {
    const tensor& x = ctx.required_input(i);
    if (x.dtype() != t) ctx.fail(errc::dtype_mismatch, "inputs have different element types " + to_string(t) + " and " + to_string(x.dtype()));
    ranks.push_back(x.rank());
  }
  const einsum_spec spec = parse_einsum(ctx, equation, ranks);
  ctx.set_output(0, visit_matmul_type(t, ctx, [&](auto tag) {
    using T = decltype(tag);
    std::vector<einsum_operand<T>> ops;
    for (std::size_t i = 0; i < ctx.input_count(); ++i) {
      const tensor& x = ctx.required_input(i);
      einsum_operand<T> o{x.view<T>().data(), spec.inputs[i], x.shape().dims(), {}, {}};
      o.strides.assign(o.dims.size(), 1);
      for (std::size_t d = o.dims.size(); d-- > 1;) o.strides[d - 1] = o.strides[d] * o.dims[d];
      ops.push_back(take_diagonals(ctx, std::move(o)));
    }
    // Labels needed after operand i: the output's and those of operands after i.
    auto keep_after = [&](std::size_t i) {
      std::vector<int> k = spec.output;
      for (std::size_t j = i + 1; j < ops.size(); ++j) k.insert(k.end(), ops[j].labels.begin(), ops[j].labels.end());
      return k;
    };
    einsum_operand<T> acc = sum_out(ops[0], keep_after(0));
    for (std::size_t i = 1; i < ops.size(); ++i) acc = contract(ctx, std::move(acc), std::move(ops[i]), keep_after(i));
    acc = sum_out(acc, spec.output);
    // Ellipsis axes that no operand had (all ranks short) have size 1.
    std::vector<std::int64_t> dims, strides;
    for (int l : spec.output) {
      dims.push_back(acc.dim_of(l));
      std::int64_t s = 0;
      for (std::size_t i = 0; i < acc.labels.size(); ++i)
        if (acc.labels[i] == l) s = acc.strides[i];
      strides.push_back(s);
    }
    tensor out(t, shape(dims));
    gather_strided(acc.p, dims, strides, out.view<T>().data());
    return out;
  }));
}

}  // namespace detail

/// Registers Gemm, MatMul, MatMulInteger, QLinearMatMul and Einsum.
inline void register_matmul_ops(op_registry& r) {
  using namespace detail;
  r.add("Gemm", run_gemm, matmul_types, check_gemm);
  r.add("MatMul", run_matmul, matmul_types);
  r.add("MatMulInteger", run_matmul_integer, types::bit(dtype::uint8) | types::bit(dtype::int8), nullptr, 10);
  r.add("QLinearMatMul", run_qlinear_matmul, types::bit(dtype::uint8) | types::bit(dtype::int8), nullptr, 10);
  r.add("Einsum", run_einsum, matmul_types, check_einsum, 12);
}

}  // namespace quench::runtime
