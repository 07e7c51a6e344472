#pragma once
// Compressed 2:4 storage: the two kept values of every group of four plus their 2-bit positions,
// in the layout NVIDIA's sparse tensor-core GEMMs consume through CUTLASS (the one PyTorch's
// torch.sparse.to_sparse_semi_structured builds for its CUTLASS backend,
// torch/sparse/_semi_structured_conversions.py; hipSPARSELt documents the same logical format).
//
// A dense matrix [rows, cols] (the sparse GEMM operand, groups of four along cols) becomes
//
//   values    [rows, cols / 2], the dense element type: group g's kept elements at 2g and 2g + 1,
//             lower position first;
//   metadata  one 4-bit code per group, idx0 | idx1 << 2 with idx0 < idx1 the kept positions
//             (0..3) -- PTX mma.sp's "sparsity metadata"; e.g. positions {1, 3} -> 0b1101.
//             Codes are packed little-endian, group g of a row in bits 4 (g % k) .. 4 (g % k) + 3
//             of word g / k: uint16 words of k = 4 groups for float16, bfloat16 (and float32),
//             uint32 words of k = 8 groups for int8, as CUTLASS's sparse GEMMs read them
//             (16 resp. 32 dense columns per metadata element). The unused codes of a last,
//             partial word are 0.
//
// A group with fewer than two kept values still names two positions (the hardware reads two
// values per group), chosen as PyTorch's CUTLASS encoder does: none or only position 2 or 3 ->
// {2, 3}; only 0 -> {0, 2}; only 1 -> {1, 2}; the filler values are stored as zeros.
// reorder_metadata_cutlass() then permutes the words into CUTLASS's ColumnMajorInterleaved<2>
// arrangement of the metadata operand (host_reorder.h reorder_meta), which the kernels expect.
//
// float32: NVIDIA's fp32/tf32 sparse kernels are 1:2 on pairs (cuSPARSELt
// CUSPARSELT_SPARSITY_50_PERCENT: "1:2 for float"), which a 2:4 mask need not satisfy; quench's
// float32 form keeps the 2:4 codes in uint16 words like float16, a storage format rather than a
// CUTLASS operand.
//
// Which positions are kept: the mask's ones when a mask is given (values elsewhere are dropped),
// otherwise the elements whose bits are not all zero -- so -0.0 counts as a value and a group
// with more than two such elements is refused. decompress_2_4(compress_2_4(x)) therefore
// reproduces x bit for bit when x is 2:4 sparse, and x * mask with a mask.
//
//     quench::tensor w = ...;                                  // float16 [N, K], 2:4 along K
//     auto c = quench::sparsity::compress_2_4(w);              // values [N, K/2], metadata [N, K/16]
//     quench::tensor back = quench::sparsity::decompress_2_4(c);
//
// Thread safety: all functions are reentrant.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "quench/core/error.hpp"
#include "quench/core/tensor.hpp"

namespace quench::detail {

/// Code for a kept-position bit set (bit j = position j) with at most two bits; 0xff for more.
inline constexpr std::uint8_t code_of_kept_2_4[16] = {
    0xe, 0x8, 0x9, 0x4, 0xe, 0x8, 0x9, 0xff, 0xe, 0xc, 0xd, 0xff, 0xe, 0xff, 0xff, 0xff};

inline std::size_t compress_groups_per_word(dtype t) noexcept { return t == dtype::int8 ? 8 : 4; }

inline void compress_check_dtype(dtype t, const std::string& ctx) {
  if (t != dtype::float32 && t != dtype::float16 && t != dtype::bfloat16 && t != dtype::int8)
    throw_error(errc::unsupported_dtype, ctx, "2:4 compression takes float, float16, bfloat16 or int8, found " + to_string(t));
}

inline bool compress_nonzero_bits(const std::byte* p, std::size_t width) noexcept {
  for (std::size_t b = 0; b < width; ++b)
    if (p[b] != std::byte{0}) return true;
  return false;
}

/// Rows and row groups of CUTLASS's metadata reordering for a word type of `word_bytes`.
inline std::size_t cutlass_meta_offset(std::size_t row, std::size_t col, std::size_t rows, std::size_t word_bytes) noexcept {
  // reorder_meta: rows in blocks of 32 (16 for 32-bit words) interleave their 8-row quarters,
  // then the 2x2 blocks of (row, column) swap their off-diagonal words, then column-major with
  // pairs of columns interleaved.
  const std::size_t group = word_bytes == 2 ? 32 : 16, interweave = word_bytes == 2 ? 4 : 2;
  std::size_t r = row / group * group + (row % 8) * interweave + (row % group) / 8;
  std::size_t c = col;
  if (r % 2 == 0 && c % 2 == 1) ++r, --c;
  else if (r % 2 == 1 && c % 2 == 0) --r, ++c;
  return (c / 2) * rows * 2 + r * 2 + (c % 2);
}

}  // namespace quench::detail

namespace quench::sparsity {

/// A compressed 2:4 matrix (see the header comment for the layout).
struct compressed_2_4 {
  std::int64_t rows = 0, cols = 0;  ///< the dense matrix
  tensor values;                    ///< [rows, cols / 2], the dense element type
  tensor metadata;                  ///< [rows, words] uint16 (uint32 for int8 values)
  bool cutlass_order = false;       ///< metadata words in ColumnMajorInterleaved<2> order

  /// Bytes of values + metadata.
  std::size_t nbytes() const noexcept { return values.nbytes() + metadata.nbytes(); }
};


/// Compresses a 2-D dense matrix whose groups of four along the columns hold at most two kept
/// values (see the header comment): kept = `mask`'s ones (uint8 / bool, same shape) when given,
/// else the non-zero elements. Throws shape_mismatch (not 2-D, cols % 4), unsupported_dtype, and
/// invalid_value naming the first group with more than two kept values.
inline compressed_2_4 compress_2_4(const tensor& dense, const tensor* mask = nullptr) {
  const std::string ctx = tensor_context(dense.name());
  detail::compress_check_dtype(dense.dtype(), ctx);
  if (dense.rank() != 2) throw_shape_mismatch(ctx, "a 2-D matrix", "shape " + to_string(dense.shape()));
  const auto rows = static_cast<std::size_t>(dense.shape()[0]), cols = static_cast<std::size_t>(dense.shape()[1]);
  if (cols % 4 != 0) throw_shape_mismatch(ctx, "a multiple of 4 columns", std::to_string(cols));
  if (mask && mask->shape() != dense.shape())
    throw_shape_mismatch(ctx, "a mask of shape " + to_string(dense.shape()), to_string(mask->shape()));
  if (mask && mask->dtype() != dtype::uint8 && mask->dtype() != dtype::bool_)
    throw_error(errc::dtype_mismatch, tensor_context(mask->name()), "expected a uint8 or bool mask, found " + to_string(mask->dtype()));

  const std::size_t width = storage_bytes(dense.dtype(), 1), groups = cols / 4;
  const std::size_t per_word = detail::compress_groups_per_word(dense.dtype());
  const std::size_t words = (groups + per_word - 1) / per_word;
  compressed_2_4 c;
  c.rows = static_cast<std::int64_t>(rows);
  c.cols = static_cast<std::int64_t>(cols);
  c.values = tensor(dense.dtype(), {c.rows, c.cols / 2}, dense.name().empty() ? "" : dense.name() + "_values");
  c.metadata = tensor(dense.dtype() == dtype::int8 ? dtype::uint32 : dtype::uint16,
                      {c.rows, static_cast<std::int64_t>(words)}, dense.name().empty() ? "" : dense.name() + "_metadata");
  const std::byte* src = dense.bytes();
  const auto* m = mask ? reinterpret_cast<const std::uint8_t*>(mask->bytes()) : nullptr;
  std::byte* vals = c.values.bytes();
  std::byte* meta = c.metadata.bytes();
  const std::size_t word_bytes = per_word / 2;
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t g = 0; g < groups; ++g) {
      const std::size_t at = r * cols + 4 * g;
      unsigned kept = 0;
      for (unsigned j = 0; j < 4; ++j)
        if (m ? m[at + j] != 0 : detail::compress_nonzero_bits(src + (at + j) * width, width)) kept |= 1u << j;
      const std::uint8_t code = detail::code_of_kept_2_4[kept];
      if (code == 0xff)
        throw_error(errc::invalid_value, ctx,
                    "row " + std::to_string(r) + ", columns " + std::to_string(4 * g) + ".." + std::to_string(4 * g + 3) + " hold " +
                        std::to_string(__builtin_popcount(kept)) + (m ? " kept" : " non-zero") +
                        " values; a 2:4 matrix has at most 2 in every group of 4");
      const unsigned idx[2] = {code & 3u, (code >> 2) & 3u};
      for (int k = 0; k < 2; ++k)
        if (kept & (1u << idx[k]))  // filler positions keep the zero the tensor starts with
          std::memcpy(vals + (r * cols / 2 + 2 * g + k) * width, src + (at + idx[k]) * width, width);
      const std::size_t word = r * words + g / per_word, shift = 4 * (g % per_word);
      if (word_bytes == 2) {
        std::uint16_t w;
        std::memcpy(&w, meta + word * 2, 2);
        w = static_cast<std::uint16_t>(w | (code << shift));
        std::memcpy(meta + word * 2, &w, 2);
      } else {
        std::uint32_t w;
        std::memcpy(&w, meta + word * 4, 4);
        w |= static_cast<std::uint32_t>(code) << shift;
        std::memcpy(meta + word * 4, &w, 4);
      }
    }
  return c;
}

/// Permutes row-major metadata words into CUTLASS's ColumnMajorInterleaved<2> order (or back with
/// `inverse`). Needs rows % 32 == 0 (16 for int8's uint32 words) and an even number of words per
/// row, as CUTLASS's sparse GEMMs do; throws shape_mismatch otherwise.
///
///     auto c = quench::sparsity::compress_2_4(w);
///     quench::sparsity::reorder_metadata_cutlass(c);   // c.metadata as the CUTLASS kernel reads it
inline void reorder_metadata_cutlass(compressed_2_4& c, bool inverse = false) {
  const std::string ctx = tensor_context(c.metadata.name());
  if (c.cutlass_order == !inverse) return;
  const std::size_t word_bytes = c.metadata.dtype() == dtype::uint32 ? 4 : 2;
  const auto rows = static_cast<std::size_t>(c.metadata.shape()[0]), words = static_cast<std::size_t>(c.metadata.shape()[1]);
  const std::size_t group = word_bytes == 2 ? 32 : 16;
  if (rows % group != 0) throw_shape_mismatch(ctx, "a multiple of " + std::to_string(group) + " rows", std::to_string(rows));
  if (words % 2 != 0) throw_shape_mismatch(ctx, "an even number of metadata words per row", std::to_string(words));
  tensor out(c.metadata.dtype(), c.metadata.shape(), c.metadata.name());
  const std::byte* src = c.metadata.bytes();
  std::byte* dst = out.bytes();
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t w = 0; w < words; ++w) {
      const std::size_t to = detail::cutlass_meta_offset(r, w, rows, word_bytes), from = r * words + w;
      if (inverse) std::memcpy(dst + from * word_bytes, src + to * word_bytes, word_bytes);
      else std::memcpy(dst + to * word_bytes, src + from * word_bytes, word_bytes);
    }
  c.metadata = std::move(out);
  c.cutlass_order = !inverse;
}

/// The dense matrix of a compressed one (zeros where nothing was kept). Throws shape_mismatch for
/// inconsistent shapes and invalid_value for a code that does not name two distinct positions in
/// increasing order (0b0000, 0b0101, ... are undefined for the hardware).
inline tensor decompress_2_4(const compressed_2_4& c) {
  compressed_2_4 rowmajor;
  const compressed_2_4* in = &c;
  if (c.cutlass_order) {
    rowmajor.rows = c.rows;
    rowmajor.cols = c.cols;
    rowmajor.values = c.values.share();
    rowmajor.metadata = c.metadata.clone();
    rowmajor.cutlass_order = true;
    reorder_metadata_cutlass(rowmajor, true);
    in = &rowmajor;
  }
  const std::string ctx = tensor_context(c.values.name());
  detail::compress_check_dtype(c.values.dtype(), ctx);
  const std::size_t per_word = detail::compress_groups_per_word(c.values.dtype());
  if (c.rows < 0 || c.cols < 0 || c.cols % 4 != 0 || c.values.shape() != shape{c.rows, c.cols / 2})
    throw_shape_mismatch(ctx, "values [rows, cols / 2] for a " + std::to_string(c.rows) + " x " + std::to_string(c.cols) + " matrix",
                         to_string(c.values.shape()));
  const auto rows = static_cast<std::size_t>(c.rows), cols = static_cast<std::size_t>(c.cols), groups = cols / 4;
  const std::size_t words = (groups + per_word - 1) / per_word;
  const dtype word_type = per_word == 8 ? dtype::uint32 : dtype::uint16;
  if (in->metadata.dtype() != word_type || in->metadata.shape() != shape{c.rows, static_cast<std::int64_t>(words)})
    throw_shape_mismatch(tensor_context(c.metadata.name()),
                         "metadata " + to_string(word_type) + " [" + std::to_string(rows) + ", " + std::to_string(words) + "]",
                         to_string(in->metadata.dtype()) + " " + to_string(in->metadata.shape()));
  const std::size_t width = storage_bytes(c.values.dtype(), 1), word_bytes = per_word / 2;
  tensor dense(c.values.dtype(), {c.rows, c.cols});
  const std::byte* vals = c.values.bytes();
  const std::byte* meta = in->metadata.bytes();
  std::byte* out = dense.bytes();
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t g = 0; g < groups; ++g) {
      std::uint32_t w = 0;
      std::memcpy(&w, meta + (r * words + g / per_word) * word_bytes, word_bytes);
      const unsigned code = (w >> (4 * (g % per_word))) & 0xfu, i0 = code & 3u, i1 = code >> 2;
      if (i0 >= i1)
        throw_error(errc::invalid_value, tensor_context(c.metadata.name()),
                    "row " + std::to_string(r) + " group " + std::to_string(g) + " has metadata code " + std::to_string(code) +
                        ", which does not name two positions in increasing order");
      std::memcpy(out + (r * cols + 4 * g + i0) * width, vals + (r * cols / 2 + 2 * g) * width, width);
      std::memcpy(out + (r * cols + 4 * g + i1) * width, vals + (r * cols / 2 + 2 * g + 1) * width, width);
    }
  return dense;
}

}  // namespace quench::sparsity
