# upgrade_opset against ONNX Runtime (included at the end of tests/CMakeLists.txt). A doctest case
# of quench_onnx_tests (skipped unless --no-skip) upgrades the models and saves each original with
# its upgraded forms; tests/ort/compare_models.js then runs every pair in onnxruntime-node, the
# original as the first model:
#   * every libonnx-testdata model below opset 13 that quench's executor runs, upgraded to 13 and
#     to 21, with the inputs of test_data_set_0 baked in (both models of a pair take no inputs);
#   * one hand-built model per rewrite at its old opset (random inputs);
#   * the torch-exported opset-9 models of the e2e_torch_models_data fixture, to 13 and 21.
if(TARGET quench_onnx_tests AND QUENCH_NODE AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/ort/node_modules/onnxruntime-node)
  set(_upgrade_dir ${CMAKE_CURRENT_BINARY_DIR}/upgrade_opset)
  set(_compare ${QUENCH_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/ort/compare_models.js)

  add_test(NAME upgrade_opset_testdata_apply
    COMMAND quench_onnx_tests --no-skip "--test-case=upgrade_opset on libonnx-testdata models*")
  set_tests_properties(upgrade_opset_testdata_apply PROPERTIES FIXTURES_SETUP upgrade_testdata LABELS "reference" TIMEOUT 600)
  foreach(_opset 13 21)
    add_test(NAME upgrade_opset_testdata_ort_${_opset}
      COMMAND ${_compare} --list ${_upgrade_dir}/testdata/pairs_${_opset}.txt --runs 1)
    set_tests_properties(upgrade_opset_testdata_ort_${_opset} PROPERTIES FIXTURES_REQUIRED upgrade_testdata
      LABELS "reference" TIMEOUT 600)
  endforeach()

  add_test(NAME upgrade_opset_rewrites_apply
    COMMAND quench_onnx_tests --no-skip "--test-case=upgrade_opset on hand-built*")
  set_tests_properties(upgrade_opset_rewrites_apply PROPERTIES FIXTURES_SETUP upgrade_rewrites LABELS "reference")
  add_test(NAME upgrade_opset_rewrites_ort
    COMMAND ${_compare} --list ${_upgrade_dir}/rewrites/pairs.txt --seed 1 --runs 3)
  set_tests_properties(upgrade_opset_rewrites_ort PROPERTIES FIXTURES_REQUIRED upgrade_rewrites LABELS "reference")

  if(TEST e2e_torch_models_data)
    add_test(NAME upgrade_opset_torch_apply
      COMMAND quench_onnx_tests --no-skip "--test-case=upgrade_opset on torch opset-9*")
    set_tests_properties(upgrade_opset_torch_apply PROPERTIES FIXTURES_REQUIRED torch_models
      FIXTURES_SETUP upgrade_torch LABELS "reference")
    add_test(NAME upgrade_opset_torch_ort
      COMMAND ${_compare} --list ${_upgrade_dir}/torch/pairs.txt --seed 1 --runs 2 --dims batch=2)
    set_tests_properties(upgrade_opset_torch_ort PROPERTIES FIXTURES_REQUIRED upgrade_torch LABELS "reference")
    # The command line: quench upgrade on the transformer (defined later in examples/, hence the
    # generator expression), the result in ONNX Runtime, and a refused downgrade.
    if(QUENCH_BUILD_EXAMPLES)
      set(_cli_in ${CMAKE_CURRENT_BINARY_DIR}/e2e/torch_models/transformer_op9.onnx)
      set(_cli_out ${CMAKE_CURRENT_BINARY_DIR}/upgrade_opset_cli_transformer_op13.onnx)
      add_test(NAME upgrade_opset_cli COMMAND $<TARGET_FILE:quench_cli> upgrade ${_cli_in} -o ${_cli_out} --opset 13 -v)
      set_tests_properties(upgrade_opset_cli PROPERTIES FIXTURES_REQUIRED torch_models FIXTURES_SETUP upgrade_cli
        LABELS "example" PASS_REGULAR_EXPRESSION "ai.onnx opset 9 -> 13 .*Unsqueeze +6")
      add_test(NAME upgrade_opset_cli_ort COMMAND ${_compare} ${_cli_in} ${_cli_out} --seed 1 --runs 2 --dims batch=2)
      set_tests_properties(upgrade_opset_cli_ort PROPERTIES FIXTURES_REQUIRED upgrade_cli LABELS "example")
      add_test(NAME upgrade_opset_cli_downgrade
        COMMAND $<TARGET_FILE:quench_cli> upgrade ${_cli_out} -o ${_cli_out}.downgraded.onnx --opset 9)
      set_tests_properties(upgrade_opset_cli_downgrade PROPERTIES FIXTURES_REQUIRED upgrade_cli LABELS "example"
        PASS_REGULAR_EXPRESSION "downgrading is not supported")
    endif()
  endif()
endif()
