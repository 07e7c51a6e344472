#pragma once
// Reading what make_asp_reference.py / make_compress_reference.py write (ctest fixture
// sparsity_reference_data) into QUENCH_TEST_BINARY_DIR/data/sparsity.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "quench/adapt/npy.hpp"
#include "quench/core/tensor.hpp"

namespace sparsity_test {

inline std::string reference_dir() { return QUENCH_TEST_BINARY_DIR "/data/sparsity"; }

inline std::string missing_hint() {
  return "; it is written by the ctest fixture sparsity_reference_data, or run: /usr/bin/python3 "
         "tests/sparsity/make_asp_reference.py " +
         reference_dir();
}

/// The lines of a reference text file split into words; empty (and a failed check) when missing.
inline std::vector<std::vector<std::string>> read_table(const std::string& file) {
  std::ifstream in(reference_dir() + "/" + file);
  std::vector<std::vector<std::string>> rows;
  if (!in) {
    FAIL_CHECK("missing " << reference_dir() << "/" << file << missing_hint());
    return rows;
  }
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::vector<std::string> row;
    for (std::string w; words >> w;) row.push_back(w);
    if (!row.empty()) rows.push_back(std::move(row));
  }
  return rows;
}

inline quench::tensor read(const std::string& file) { return quench::read_npy(reference_dir() + "/" + file); }

/// A uint16 tensor of bfloat16 bit patterns as a bfloat16 tensor (NumPy has no bfloat16).
inline quench::tensor as_bfloat16(const quench::tensor& bits, const std::string& name) {
  quench::tensor t(quench::dtype::bfloat16, bits.shape(), name);
  std::memcpy(t.bytes(), bits.bytes(), bits.nbytes());
  return t;
}

}  // namespace sparsity_test
