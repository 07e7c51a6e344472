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

# The command line: quench sparsify / prune on the torch ResNet (quench_cli is defined later in
# examples/, hence the generator expressions), channel removal checked in ONNX Runtime against the
# silenced model, and refusals.
if(TEST e2e_torch_models_data AND QUENCH_BUILD_EXAMPLES)
  set(_cli_in ${CMAKE_CURRENT_BINARY_DIR}/e2e/torch_models/resnet_op13.onnx)
  set(_cli_dir ${CMAKE_CURRENT_BINARY_DIR}/sparsity_cli)
  file(MAKE_DIRECTORY ${_cli_dir})
  add_test(NAME sparsity_cli_sparsify
    COMMAND $<TARGET_FILE:quench_cli> sparsify ${_cli_in} -o ${_cli_dir}/resnet_24.onnx --permute --report ${_cli_dir}/resnet_24.json)
  set_tests_properties(sparsity_cli_sparsify PROPERTIES FIXTURES_REQUIRED torch_models FIXTURES_SETUP sparsity_cli
    LABELS "example" PASS_REGULAR_EXPRESSION "weights sparsified: 8, skipped: 2.*5 of 5 groups permuted.*sparsity: 48\\.11 %.*output SQNR")
  add_test(NAME sparsity_cli_sparsify_check
    COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/sparsity/check_sparse_model.py ${_cli_in}
            ${_cli_dir}/resnet_24.onnx ${_cli_dir}/resnet_24.json)
  set_tests_properties(sparsity_cli_sparsify_check PROPERTIES FIXTURES_REQUIRED sparsity_cli LABELS "example")
  add_test(NAME sparsity_cli_prune_remove
    COMMAND $<TARGET_FILE:quench_cli> prune ${_cli_in} -o ${_cli_dir}/resnet_pruned.onnx --amount 0.3 --remove-channels
            --report ${_cli_dir}/resnet_pruned.json)
  set_tests_properties(sparsity_cli_prune_remove PROPERTIES FIXTURES_REQUIRED torch_models FIXTURES_SETUP sparsity_cli
    LABELS "example" PASS_REGULAR_EXPRESSION "channel groups: 4 of 7 pruned.*parameters: 80634 -> 49786")
  add_test(NAME sparsity_cli_prune_silence
    COMMAND $<TARGET_FILE:quench_cli> prune ${_cli_in} -o ${_cli_dir}/resnet_silenced.onnx --amount 0.3 --silence-channels --no-check)
  set_tests_properties(sparsity_cli_prune_silence PROPERTIES FIXTURES_REQUIRED torch_models FIXTURES_SETUP sparsity_cli
    LABELS "example")
  if(QUENCH_NODE AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/ort/node_modules/onnxruntime-node)
    add_test(NAME sparsity_cli_prune_ort
      COMMAND ${QUENCH_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/ort/compare_models.js ${_cli_dir}/resnet_silenced.onnx
              ${_cli_dir}/resnet_pruned.onnx --seed 1 --runs 2 --tol 1e-4 --dims batch=2)
    set_tests_properties(sparsity_cli_prune_ort PROPERTIES FIXTURES_REQUIRED sparsity_cli LABELS "example")
  endif()
  add_test(NAME sparsity_cli_refusals
    COMMAND $<TARGET_FILE:quench_cli> sparsify ${_cli_in} -o ${_cli_dir}/bad.onnx --pattern 2:2)
  set_tests_properties(sparsity_cli_refusals PROPERTIES FIXTURES_REQUIRED torch_models LABELS "example"
    PASS_REGULAR_EXPRESSION "quench: \\[quench.invalid_argument\\] pattern: expected an N:M pattern with 1 <= N < M <= 16, found 2:2")
  add_test(NAME sparsity_cli_refusals_prune
    COMMAND $<TARGET_FILE:quench_cli> prune ${_cli_in} -o ${_cli_dir}/bad.onnx --amount 0.3 --global --structured)
  set_tests_properties(sparsity_cli_refusals_prune PROPERTIES FIXTURES_REQUIRED torch_models LABELS "example"
    PASS_REGULAR_EXPRESSION "global pruning is unstructured")
endif()
