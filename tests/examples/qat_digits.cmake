# examples/qat_digits: QAT in C++ on the bundled digits, its accuracy table checked, and the exported
# float and 4-bit QDQ models run in ONNX Runtime against the C++ predictions
# (tests/examples/qat_digits_test.py). Included at the end of tests/CMakeLists.txt.
if(QUENCH_BUILD_EXAMPLES AND TARGET quench::onnx)
  if(QUENCH_NODE AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/ort/node_modules/onnxruntime-node)
    add_test(NAME example_qat_digits
      COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/examples/qat_digits_test.py $<TARGET_FILE:qat_digits>
              ${QUENCH_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/ort/run_npy.js ${PROJECT_SOURCE_DIR}/examples/data/digits
              ${CMAKE_CURRENT_BINARY_DIR}/examples/qat_digits)
  else()
    # Without ONNX Runtime: the example runs and prints its table.
    add_test(NAME example_qat_digits
      COMMAND qat_digits --out ${CMAKE_CURRENT_BINARY_DIR}/examples/qat_digits/out)
    set_tests_properties(example_qat_digits PROPERTIES PASS_REGULAR_EXPRESSION "mean +[0-9.]+% \\([0-9.]+\\)")
  endif()
  set_tests_properties(example_qat_digits PROPERTIES LABELS "example" TIMEOUT 300)
endif()
