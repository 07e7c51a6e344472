# ctest fixture: generate the quant layer's ONNX Runtime reference data.
#   cmake -DPYTHON=... -DNODE=... -DSOURCE_DIR=<repo> -DOUT=<dir> -P ort_reference.cmake
# Python builds the models and inputs, node runs them in onnxruntime-node; both write into
# OUT.tmp, which replaces OUT only when everything succeeded, so a test never reads half a set.

foreach(var PYTHON NODE SOURCE_DIR OUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "ort_reference.cmake: -D${var}=... is required")
  endif()
endforeach()

set(tmp "${OUT}.tmp")
file(REMOVE_RECURSE "${tmp}")
execute_process(
  COMMAND "${PYTHON}" "${SOURCE_DIR}/tests/quant/make_ort_reference.py" "${tmp}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "make_ort_reference.py failed (${rc})")
endif()
execute_process(
  COMMAND "${NODE}" "${SOURCE_DIR}/tests/ort/run_model.js" "${tmp}/manifest.json"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "run_model.js failed (${rc})")
endif()
file(REMOVE_RECURSE "${OUT}")
file(RENAME "${tmp}" "${OUT}")
