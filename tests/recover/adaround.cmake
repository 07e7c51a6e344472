# AdaRound's reference (tests/recover/make_adaround_reference.py): torch 1.13 runs the paper's
# loss with autograd and torch.optim.Adam on a fixed Conv and Gemm layer; the recover tests compare
# V after the same steps. Included at the end of tests/CMakeLists.txt.
if(TARGET quench_recover_tests)
  add_test(NAME recover_reference_data
    COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/recover/make_adaround_reference.py
            ${CMAKE_CURRENT_BINARY_DIR}/data/recover)
  set_tests_properties(recover_reference_data PROPERTIES FIXTURES_SETUP recover_ref LABELS "reference" TIMEOUT 300)
  set_tests_properties(recover PROPERTIES FIXTURES_REQUIRED recover_ref)
endif()
