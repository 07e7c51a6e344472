#pragma once
// The order in which apex ASP tries N:M patterns, which decides ties.
//
// ASP's mn_1d_best (apex/contrib/sparsity/sparse_masklib.py) builds its candidate patterns as
// `set(permutations([1.0] * N + [0.0] * (M - N)))`, scores every group by |w| @ pattern and keeps
// `torch.argmax`, the first maximum. The pattern order is therefore the iteration order of a CPython
// set of float tuples: deterministic (float and tuple hashes are not randomised), but an
// implementation detail of CPython. This header reproduces it: the tuple hash of CPython >= 3.8
// (Objects/tupleobject.c, the xxHash-based tuplehash; hash(1.0) = 1, hash(0.0) = 0) and the
// insertion/probing/resizing of Objects/setobject.c (LINEAR_PROBES 9, PERTURB_SHIFT 5, resize to
// 4 x used when fill * 5 >= mask * 3, PySet_MINSIZE 8). Distinct tuples are inserted in the order
// itertools.permutations first yields them, which is descending lexicographic order (at the
// first position where two first occurrences differ, the one with a 1 took the smaller index).
//
// tests/sparsity/make_asp_reference.py prints Python's actual order for every M <= 8 and the test
// compares, so a CPython that changes its set shows up as a failing test, not as silent drift.
// For 2:4 the order is (0,1,0,1) (1,1,0,0) (0,1,1,0) (1,0,1,0) (1,0,0,1) (0,0,1,1): an all-equal
// group keeps positions 1 and 3.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace quench::detail {

/// CPython's hash of a tuple of M floats, each 1.0 (bit j of `pattern` set) or 0.0.
constexpr std::uint64_t cpython_pattern_tuple_hash(std::uint32_t pattern, int m) noexcept {
  constexpr std::uint64_t prime1 = 11400714785074694791ULL;
  constexpr std::uint64_t prime2 = 14029467366897019727ULL;
  constexpr std::uint64_t prime5 = 2870177450012600261ULL;
  std::uint64_t acc = prime5;
  for (int j = 0; j < m; ++j) {
    const std::uint64_t lane = (pattern >> j) & 1u;  // hash(1.0) == 1, hash(0.0) == 0
    acc += lane * prime2;
    acc = (acc << 31) | (acc >> 33);
    acc *= prime1;
  }
  acc += static_cast<std::uint64_t>(m) ^ (prime5 ^ 3527539ULL);
  if (acc == ~std::uint64_t{0}) return 1546275796;  // -1 is reserved for errors
  return acc;
}

/// rank[pattern] = position of the pattern (bit j = element j kept) in ASP's set order, for the
/// C(M, N) patterns with N bits; 0xffff for every other bit pattern. Costs O(C(M, N)).
inline std::vector<std::uint16_t> asp_pattern_ranks(int n, int m) {
  // Distinct patterns in descending lexicographic order of the tuple (element 0 most significant).
  std::vector<std::uint32_t> order;
  const std::uint32_t limit = 1u << m;
  for (std::uint32_t t = limit; t-- > 0;) {
    if (__builtin_popcount(t) != n) continue;
    std::uint32_t bits = 0;  // tuple element j (weight 2^(m-1-j) in t) -> bit j
    for (int j = 0; j < m; ++j)
      if ((t >> (m - 1 - j)) & 1u) bits |= 1u << j;
    order.push_back(bits);
  }

  struct slot {
    bool used = false;
    std::uint64_t hash = 0;
    std::uint32_t key = 0;
  };
  constexpr std::size_t linear_probes = 9;
  std::vector<slot> table(8);
  std::size_t fill = 0;

  // set_insert_clean (used when rehashing) and the probe loop of set_add_entry visit slots in the
  // same sequence; the keys are distinct, so the first empty slot is where a key lands.
  auto place = [&](std::vector<slot>& t, std::uint32_t key, std::uint64_t hash) {
    const std::size_t mask = t.size() - 1;
    std::size_t perturb = hash;
    std::size_t i = hash & mask;
    while (true) {
      const std::size_t probes = i + linear_probes <= mask ? linear_probes : 0;
      for (std::size_t j = 0; j <= probes; ++j) {
        slot& s = t[i + j];
        if (!s.used) {
          s = slot{true, hash, key};
          return;
        }
      }
      perturb >>= 5;
      i = (i * 5 + 1 + perturb) & mask;
    }
  };

  for (std::uint32_t key : order) {
    place(table, key, cpython_pattern_tuple_hash(key, m));
    ++fill;
    const std::size_t mask = table.size() - 1;
    if (fill * 5 < mask * 3) continue;
    std::size_t size = 8;
    while (size <= fill * 4) size <<= 1;
    std::vector<slot> bigger(size);
    for (const slot& s : table)
      if (s.used) place(bigger, s.key, s.hash);
    table.swap(bigger);
  }

  std::vector<std::uint16_t> rank(limit, 0xffff);
  std::uint16_t next = 0;
  for (const slot& s : table)
    if (s.used) rank[s.key] = next++;
  return rank;
}

}  // namespace quench::detail
