# float16 / bfloat16 conversion (quench/pipeline/float16.hpp): the tests beyond the unit tests of
# quench_pipeline_tests. Included at the end of tests/CMakeLists.txt.

# The float-only table of detail/float16_schema.hpp still matches onnx's operator schemas.
add_test(NAME float16_schema_table
  COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/float16_schema_table.py
          ${PROJECT_SOURCE_DIR}/include/quench/pipeline/detail/float16_schema.hpp)
set_tests_properties(float16_schema_table PROPERTIES LABELS "reference")
