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
