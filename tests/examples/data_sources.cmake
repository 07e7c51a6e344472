# quench CLI data sources (issue 12): every kind of --data / --images source against the state of
# the equivalent .npy, bad-data handling, and Ctrl-C leaving no partial output
# (tests/examples/data_sources_test.py, interrupt_test.py), on the torch-exported MobileNet of the
# e2e fixture. Included from examples/quench/CMakeLists.txt (after tests/, so the e2e targets exist).
if(TARGET quench_cli AND TARGET quench_e2e_tests)
  set(_models ${PROJECT_BINARY_DIR}/tests/e2e/torch_models)
  set(_data_sources_images "")
  if(TARGET quench::image)
    set(_data_sources_images --images)
  endif()
  add_test(NAME example_data_sources
    COMMAND ${QUENCH_REFERENCE_PYTHON} ${PROJECT_SOURCE_DIR}/tests/examples/data_sources_test.py $<TARGET_FILE:quench_cli>
            ${_models}/mobilenet_op13.onnx ${PROJECT_BINARY_DIR}/tests/examples/data_sources ${_data_sources_images})
  set_tests_properties(example_data_sources PROPERTIES FIXTURES_REQUIRED torch_models LABELS "example" TIMEOUT 300)
  add_test(NAME example_interrupt
    COMMAND ${QUENCH_REFERENCE_PYTHON} ${PROJECT_SOURCE_DIR}/tests/examples/interrupt_test.py $<TARGET_FILE:quench_cli>
            ${_models}/mobilenet_op13.onnx ${PROJECT_BINARY_DIR}/tests/examples/interrupt)
  set_tests_properties(example_interrupt PROPERTIES FIXTURES_REQUIRED torch_models LABELS "example" TIMEOUT 120)
endif()
