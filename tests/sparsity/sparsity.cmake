# N:M sparsity, pruning masks and their ONNX pipelines (issue 8). Included at the end of
# tests/CMakeLists.txt.
#
#   sparsity   quench_sparsity_tests: N:M masks against apex ASP's algorithm (a torch transcription,
#              tests/sparsity/make_asp_reference.py), 2:4 compression, channel permutation search
#   prune      quench_prune_tests: masks against torch.nn.utils.prune (tests/prune/make_prune_reference.py)
quench_add_layer_tests(sparsity)
add_test(NAME sparsity_reference_data
  COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/sparsity/make_asp_reference.py
          ${CMAKE_CURRENT_BINARY_DIR}/data/sparsity)
add_test(NAME sparsity_compress_reference_data
  COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/sparsity/make_compress_reference.py
          ${CMAKE_CURRENT_BINARY_DIR}/data/sparsity)
set_tests_properties(sparsity_reference_data sparsity_compress_reference_data PROPERTIES FIXTURES_SETUP sparsity_ref
  LABELS "reference")
set_tests_properties(sparsity PROPERTIES FIXTURES_REQUIRED sparsity_ref)

quench_add_layer_tests(prune)
add_test(NAME prune_reference_data
  COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/prune/make_prune_reference.py
          ${CMAKE_CURRENT_BINARY_DIR}/data/prune)
set_tests_properties(prune_reference_data PROPERTIES FIXTURES_SETUP prune_ref LABELS "reference")
set_tests_properties(prune PROPERTIES FIXTURES_REQUIRED prune_ref)

# The pipelines on the torch-exported networks (tests/e2e/sparsity_e2e_test.cpp writes the models,
# skipped unless --no-skip), then ONNX Runtime: permuted vs original and channel-pruned vs
# silenced must agree; 2:4-sparse and L1-pruned models must load, run and keep their output shapes.
if(TEST e2e_torch_models_data AND TARGET quench_e2e_tests)
  set(_sparsity_e2e ${CMAKE_CURRENT_BINARY_DIR}/e2e/sparsity)
  add_test(NAME sparsity_e2e_apply COMMAND quench_e2e_tests --no-skip "--test-case=sparsity on the torch-exported*")
  set_tests_properties(sparsity_e2e_apply PROPERTIES FIXTURES_REQUIRED torch_models FIXTURES_SETUP sparsity_e2e
    LABELS "reference" TIMEOUT 600)
  add_test(NAME sparsity_e2e_ort_exact
    COMMAND ${QUENCH_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/ort/compare_models.js --list ${_sparsity_e2e}/pairs_exact.txt
            --seed 1 --runs 2 --tol 1e-4 --dims batch=2)
  add_test(NAME sparsity_e2e_ort_run
    COMMAND ${QUENCH_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/ort/compare_models.js --list ${_sparsity_e2e}/pairs_run.txt
            --seed 1 --runs 1 --tol 1e9 --dims batch=2)
  set_tests_properties(sparsity_e2e_ort_exact sparsity_e2e_ort_run PROPERTIES FIXTURES_REQUIRED sparsity_e2e LABELS "reference")
endif()
