#pragma once
// How a tensor's bytes were stored in the loaded ONNX file.

#include <cstdint>

namespace quench {

/// Saving keeps the encoding a tensor was loaded with (unless options say otherwise), so an
/// untouched model round-trips byte for byte.
enum class tensor_encoding : std::uint8_t {
  raw,       ///< TensorProto.raw_data (what quench writes for new tensors)
  typed,     ///< float_data / int32_data / int64_data / double_data / uint64_data
  external,  ///< data_location = EXTERNAL, in a file beside the model
};

}  // namespace quench
