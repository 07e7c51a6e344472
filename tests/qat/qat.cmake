# qat: fake quant, learnable (LSQ) fake quant, training observers (tests/qat/). Included at the end
# of tests/CMakeLists.txt. The reference outputs and gradients come from the installed torch 1.13
# (tests/qat/make_qat_reference.py), regenerated before the tests run.
quench_add_layer_tests(qat)
if(TARGET quench_qat_tests)
  add_test(NAME qat_reference_data
    COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/qat/make_qat_reference.py
            ${CMAKE_CURRENT_BINARY_DIR}/data/qat)
  set_tests_properties(qat_reference_data PROPERTIES FIXTURES_SETUP qat_ref LABELS "reference" TIMEOUT 300)
  set_tests_properties(qat PROPERTIES FIXTURES_REQUIRED qat_ref)
  # The kernels again on the portable path, whatever this CPU has.
  add_test(NAME qat_scalar COMMAND quench_qat_tests)
  set_tests_properties(qat_scalar PROPERTIES LABELS "unit" FIXTURES_REQUIRED qat_ref
    ENVIRONMENT "QUENCH_SIMD_TARGET=scalar")
endif()
