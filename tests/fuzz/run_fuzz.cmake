# Builds tests/fuzz with clang and runs every fuzz target for a bounded time, seeded with the
# libonnx-testdata models. Fails on any crash, leak, sanitizer report or timeout; prints
# "quench-fuzz: SKIPPED" (a ctest skip) when clang or its libFuzzer runtime is missing.
#
#   cmake -DSOURCE_DIR=<quench> -DWORK_DIR=<dir> -DCLANGXX=clang++-14 -DTESTDATA=<dir>
#         [-DSECONDS=60] [-DGENERATOR=Ninja] [-DLAUNCHER=ccache] [-DPYTHON=python-with-onnx]
#         -P run_fuzz.cmake
cmake_minimum_required(VERSION 3.21)
foreach(_var SOURCE_DIR WORK_DIR TESTDATA)
  if(NOT ${_var})
    message(FATAL_ERROR "run_fuzz.cmake: -D${_var}=... is required")
  endif()
endforeach()
if(NOT SECONDS)
  set(SECONDS 60)
endif()
if(NOT GENERATOR)
  set(GENERATOR Ninja)
endif()

if(NOT CLANGXX OR NOT EXISTS "${CLANGXX}")
  message("quench-fuzz: SKIPPED: clang++ not found (apt-get install clang-14 libclang-rt-14-dev)")
  return()
endif()
# Debian ships libFuzzer and the sanitizer runtimes apart from the compiler.
file(MAKE_DIRECTORY "${WORK_DIR}/probe")
file(WRITE "${WORK_DIR}/probe/probe.cpp"
  "#include <cstddef>\n#include <cstdint>\nextern \"C\" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }\n")
execute_process(COMMAND "${CLANGXX}" -fsanitize=fuzzer,address,undefined probe.cpp -o probe
  WORKING_DIRECTORY "${WORK_DIR}/probe" RESULT_VARIABLE _rc OUTPUT_QUIET ERROR_VARIABLE _err)
if(NOT _rc EQUAL 0)
  message("quench-fuzz: SKIPPED: ${CLANGXX} cannot link a libFuzzer target (apt-get install libclang-rt-14-dev):\n${_err}")
  return()
endif()

# ---- build ----
set(_configure "${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/fuzz" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    "-DCMAKE_BUILD_TYPE=" "-DCMAKE_CXX_COMPILER=${CLANGXX}" "-DQUENCH_SOURCE_DIR=${SOURCE_DIR}")
if(LAUNCHER)
  list(APPEND _configure "-DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER}")
endif()
execute_process(COMMAND ${_configure} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "quench-fuzz: configuring tests/fuzz failed:\n${_out}")
endif()
# Two jobs at most: the machine is shared with other builds.
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${WORK_DIR}/build" --parallel 2
  RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "quench-fuzz: building the fuzz targets failed:\n${_out}")
endif()

# ---- corpus: the testdata models as seeds (copied here, never committed), and a grown corpus ----
set(_seeds "${WORK_DIR}/seeds")
if(NOT EXISTS "${_seeds}/.complete")
  file(REMOVE_RECURSE "${_seeds}")
  file(MAKE_DIRECTORY "${_seeds}")
  file(GLOB_RECURSE _models "${TESTDATA}/*/model.onnx")
  if(NOT _models)
    message(FATAL_ERROR "quench-fuzz: no model.onnx under ${TESTDATA} (apt-get install libonnx-testdata)")
  endif()
  foreach(_m IN LISTS _models)
    file(RELATIVE_PATH _rel "${TESTDATA}" "${_m}")
    string(REPLACE "/" "__" _flat "${_rel}")
    file(COPY_FILE "${_m}" "${_seeds}/${_flat}")
  endforeach()
  # Hand-made seeds for external data, nested scopes and new types (make_seeds.py explains why).
  if(PYTHON)
    execute_process(COMMAND "${PYTHON}" "${SOURCE_DIR}/tests/fuzz/make_seeds.py" "${_seeds}" RESULT_VARIABLE _rc ERROR_VARIABLE _err)
    if(NOT _rc EQUAL 0)
      message(FATAL_ERROR "quench-fuzz: make_seeds.py failed:\n${_err}")
    endif()
  endif()
  file(TOUCH "${_seeds}/.complete")
endif()
file(MAKE_DIRECTORY "${WORK_DIR}/artifacts" "${WORK_DIR}/external")
# External data the inputs may point at (load_model_fuzz.cpp, make_seeds.py): 65,536 bytes.
string(REPEAT "0123456789abcdef" 4096 _bytes)
file(WRITE "${WORK_DIR}/external/w.bin" "${_bytes}")

# ---- run ----
file(GLOB _targets "${WORK_DIR}/build/bin/*_fuzz")
if(NOT _targets)
  message(FATAL_ERROR "quench-fuzz: no fuzz target was built")
endif()
set(_failed "")
foreach(_t IN LISTS _targets)
  get_filename_component(_name "${_t}" NAME)
  set(_log "${WORK_DIR}/${_name}.log")
  # Each target grows its own corpus (kept between runs); the seeds are shared and read-only.
  file(MAKE_DIRECTORY "${WORK_DIR}/corpus/${_name}")
  execute_process(
    COMMAND "${CMAKE_COMMAND}" -E env "QUENCH_FUZZ_EXTERNAL_DIR=${WORK_DIR}/external"
            "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0" "UBSAN_OPTIONS=print_stacktrace=1"
            "${_t}" -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
            "-dict=${SOURCE_DIR}/tests/fuzz/onnx.dict" "-artifact_prefix=${WORK_DIR}/artifacts/${_name}-"
            "${WORK_DIR}/corpus/${_name}" "${_seeds}"
    WORKING_DIRECTORY "${WORK_DIR}"
    RESULT_VARIABLE _rc OUTPUT_FILE "${_log}" ERROR_FILE "${_log}")
  file(READ "${_log}" _text)
  string(REGEX MATCH "stat::number_of_executed_units: *[0-9]+" _execs "${_text}")
  string(REGEX MATCH "stat::new_units_added: *[0-9]+" _new "${_text}")
  string(REGEX MATCH "cov: [0-9]+ ft: [0-9]+ corp: [^ ]+" _cov "${_text}")
  message("quench-fuzz: ${_name}: exit ${_rc}; ${_execs}; ${_new}; last ${_cov}")
  if(NOT _rc EQUAL 0 OR _text MATCHES "(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|quench fuzz finding|deadly signal|ALARM: )")
    # The report is what matters; libFuzzer's progress lines before it are not.
    string(FIND "${_text}" "==ERROR" _at)
    if(_at LESS 0)
      string(FIND "${_text}" "quench fuzz finding" _at)
    endif()
    if(_at LESS 0)
      string(FIND "${_text}" "runtime error" _at)
    endif()
    if(_at LESS 0)
      set(_at 0)
    endif()
    string(SUBSTRING "${_text}" ${_at} 6000 _report)
    message("quench-fuzz: ${_name} FAILED (log ${_log}, reproducer in ${WORK_DIR}/artifacts):\n${_report}")
    list(APPEND _failed "${_name}")
  endif()
endforeach()
if(_failed)
  message(FATAL_ERROR "quench-fuzz: findings in ${_failed}")
endif()
