// The snippet to copy into your own converter: load a model, calibrate it on .npy data, print
// the range of every activation.
//
//     calibrate_minimal MODEL.onnx INPUT_NAME DATA.npy [minmax|entropy|percentile|mse]
#include <cstdio>
#include <filesystem>
#include <string>

#include <quench/calib/calibrate.hpp>
#include <quench/data/npy_source.hpp>
#include <quench/onnx/model_io.hpp>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.onnx INPUT_NAME DATA.npy [minmax|entropy|percentile|mse]\n", argv[0]);
    return 2;
  }
  try {
    const quench::model model = quench::onnx::load_model(argv[1]);
    quench::data::npy_source data({{std::string(argv[2]), std::filesystem::path(argv[3])}});  // samples on axis 0

    quench::calib::calibrate_options options;
    options.method = quench::calib::parse_method(argc > 4 ? argv[4] : "entropy");
    options.batch_size = 8;
    const auto result = quench::calib::calibrate(model, data, options);

    std::printf("%-60s %12s %12s\n", "tensor", "min", "max");
    for (const auto& t : result.table.entries())
      std::printf("%-60s %12.6g %12.6g\n", t.name.c_str(), t.range.min, t.range.max);
    return 0;
  } catch (const quench::error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
