# QAT export and fold (quench/pipeline/qat_export.hpp, fold_qdq.hpp) against torch 1.13 and ONNX
# Runtime: a torch.ao.quantization QAT CNN exported with its fake quants
# (tests/pipeline/make_qat_torch_model.py, regenerated before the test), then quench fold and
# export-qat, run in ONNX Runtime (tests/qatexport/qat_export_ort_test.py). Unit tests are in
# tests/pipeline/qat_export_test.cpp. Included at the end of tests/CMakeLists.txt (quench_cli is
# defined later, in examples/, so the condition asks for the examples build).
if(QUENCH_NODE AND EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/ort/node_modules/onnxruntime-node AND QUENCH_BUILD_EXAMPLES AND TARGET quench::onnx)
  set(_qat_dir ${CMAKE_CURRENT_BINARY_DIR}/qatexport)
  add_test(NAME qat_export_torch_data
    COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/pipeline/make_qat_torch_model.py ${_qat_dir}/data)
  set_tests_properties(qat_export_torch_data PROPERTIES FIXTURES_SETUP qat_export_data LABELS "reference" TIMEOUT 300)
  add_test(NAME qat_export_ort
    COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/qatexport/qat_export_ort_test.py $<TARGET_FILE:quench_cli>
            ${QUENCH_NODE} ${CMAKE_CURRENT_SOURCE_DIR}/ort/run_npy.js ${_qat_dir}/data ${_qat_dir}/work)
  set_tests_properties(qat_export_ort PROPERTIES FIXTURES_REQUIRED qat_export_data LABELS "example" TIMEOUT 300)
endif()
