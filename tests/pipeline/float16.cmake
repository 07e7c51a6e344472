# float16 / bfloat16 conversion (quench/pipeline/float16.hpp): the tests beyond the unit tests of
# quench_pipeline_tests. Included at the end of tests/CMakeLists.txt.

# The float-only table of detail/float16_schema.hpp still matches onnx's operator schemas.
add_test(NAME float16_schema_table
  COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/float16_schema_table.py
          ${PROJECT_SOURCE_DIR}/include/quench/pipeline/detail/float16_schema.hpp)
set_tests_properties(float16_schema_table PROPERTIES LABELS "reference")

# The torch-exported networks (and an If/Loop model, a weight-only QDQ model, external data and a
# model that overflows float16) converted by quench_e2e_tests, then run in ONNX Runtime against
# float32: cosine similarity, max relative error, Inf where float32 is finite.
if(TARGET quench_e2e_tests AND QUENCH_NODE AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/ort/node_modules/onnxruntime-node)
  add_test(NAME e2e_float16_apply COMMAND quench_e2e_tests --no-skip "--test-case=float16 and bfloat16*")
  set_tests_properties(e2e_float16_apply PROPERTIES FIXTURES_REQUIRED torch_models FIXTURES_SETUP float16_models
    LABELS "reference")
  add_test(NAME e2e_float16_ort
    COMMAND ${QUENCH_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/ort/compare_float16.js --list
            ${CMAKE_CURRENT_BINARY_DIR}/e2e/float16/pairs.txt --seed 1 --runs 2 --dims batch=2)
  set_tests_properties(e2e_float16_ort PROPERTIES FIXTURES_REQUIRED float16_models LABELS "reference")
  # Every libonnx-testdata model converted: ONNX Runtime loads each one whose original it loads.
  add_test(NAME e2e_float16_testdata_apply COMMAND quench_e2e_tests --no-skip "--test-case=float16 conversions of every*")
  set_tests_properties(e2e_float16_testdata_apply PROPERTIES FIXTURES_SETUP float16_testdata LABELS "reference")
  add_test(NAME e2e_float16_testdata_ort
    COMMAND ${QUENCH_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/ort/compare_float16.js --load-only --list
            ${CMAKE_CURRENT_BINARY_DIR}/e2e/float16/testdata/pairs.txt)
  set_tests_properties(e2e_float16_testdata_ort PROPERTIES FIXTURES_REQUIRED float16_testdata LABELS "reference" TIMEOUT 600)
  # quench float16 on the command line: --auto-block on an overflowing model, options, refusals.
  if(QUENCH_BUILD_EXAMPLES)
    add_test(NAME example_float16
      COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/examples/float16_cli_test.py $<TARGET_FILE:quench_cli>
              ${QUENCH_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/ort/compare_float16.js ${CMAKE_CURRENT_BINARY_DIR}/e2e/torch_models
              ${CMAKE_CURRENT_BINARY_DIR}/examples/float16)
    set_tests_properties(example_float16 PROPERTIES FIXTURES_REQUIRED torch_models LABELS "example")
  endif()
endif()
