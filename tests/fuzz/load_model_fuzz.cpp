// libFuzzer target for the ONNX loader and the graph builder.
//
// Any input may be rejected with a quench::error (that is the contract for bad models); nothing
// may crash, leak, trip a sanitizer, or escape as another exception. A model that did load must
// also behave: its graph passes the invariant checker, sorts or names a cycle, saves, and the
// saved bytes load again and save to the same bytes (the round trip is what quench promises).
//
// QUENCH_FUZZ_EXTERNAL_DIR (set by run_fuzz.cmake) names a directory holding w.bin, so inputs
// that reference external data reach the mmap and range checks instead of stopping at "no such file".

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "quench/onnx/model_io.hpp"

namespace {

quench::onnx::load_options fuzz_options() {
  quench::onnx::load_options o;
  if (const char* dir = std::getenv("QUENCH_FUZZ_EXTERNAL_DIR")) o.base_dir = dir;
  else o.load_external_data = false;
  return o;
}

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "quench fuzz finding: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const quench::onnx::load_options opts = fuzz_options();
  quench::model m;
  try {
    m = quench::onnx::load_model_buffer(data, size, opts);
  } catch (const quench::error&) {
    return 0;  // rejected with a message: the expected outcome for most inputs
  }

  try {
    m.main_graph().check_invariants();
  } catch (const quench::error& e) {
    finding("a loaded graph breaks its invariants", e.what());
  }
  try {
    m.main_graph().topological_sort();
  } catch (const quench::error&) {
    // A cycle is a property of the input; the error names a node on it.
  }

  std::string saved;
  try {
    saved = quench::onnx::save_model_buffer(m);
  } catch (const quench::error& e) {
    finding("a loaded model does not save", e.what());
  }
  try {
    const quench::model again = quench::onnx::load_model_buffer(saved.data(), saved.size());
    again.main_graph().check_invariants();
    if (quench::onnx::save_model_buffer(again) != saved) finding("save(load(saved)) differs from saved", "");
  } catch (const quench::error& e) {
    finding("a saved model does not load again", e.what());
  }
  return 0;
}
