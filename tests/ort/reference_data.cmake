# ctest fixture: generate ONNX Runtime reference data.
#   cmake -DPYTHON=... -DNODE=... -DSOURCE_DIR=<repo> -DSCRIPT=<tests/...py> -DOUT=<dir>
#         [-DSCRIPT_ARGS="--a;1"] -P reference_data.cmake
# SCRIPT (Python) builds the models, inputs and OUT/manifest.json; node runs every case in
# onnxruntime-node (tests/ort/run_model.js). Both write into OUT.tmp, which replaces OUT only when
# everything succeeded, so a test never reads half a set.

foreach(var PYTHON NODE SOURCE_DIR SCRIPT OUT)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "reference_data.cmake: -D${var}=... is required")
  endif()
endforeach()

set(tmp "${OUT}.tmp")
file(REMOVE_RECURSE "${tmp}")
execute_process(
  COMMAND "${PYTHON}" "${SOURCE_DIR}/${SCRIPT}" "${tmp}" ${SCRIPT_ARGS}
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SCRIPT} failed (${rc})")
endif()
execute_process(
  COMMAND "${NODE}" "${SOURCE_DIR}/tests/ort/run_model.js" "${tmp}/manifest.json"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "run_model.js failed (${rc})")
endif()
file(REMOVE_RECURSE "${OUT}")
file(RENAME "${tmp}" "${OUT}")
