# Installs quench into a scratch prefix, then configures, builds and runs the consumer project
# three ways. Invoked by ctest (see tests/CMakeLists.txt) with QUENCH_SOURCE_DIR, WORK_DIR,
# CXX_COMPILER.
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
set(common -G Ninja -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Release)

# 1. Install quench (no tests, examples or benchmarks: install rules only).
run(${CMAKE_COMMAND} -S "${QUENCH_SOURCE_DIR}" -B "${WORK_DIR}/quench-build" ${common}
    -DCMAKE_INSTALL_PREFIX=${prefix} -DQUENCH_INSTALL=ON -DQUENCH_BUILD_TESTS=OFF
    -DQUENCH_BUILD_EXAMPLES=OFF -DQUENCH_BUILD_BENCH=OFF)
run(${CMAKE_COMMAND} --install "${WORK_DIR}/quench-build")
foreach(f quench-config.cmake quench-config-version.cmake quench-targets.cmake)
  if(NOT EXISTS "${prefix}/share/cmake/quench/${f}")
    message(FATAL_ERROR "install did not write share/cmake/quench/${f}")
  endif()
endforeach()
if(NOT EXISTS "${prefix}/include/quench/quench.hpp")
  message(FATAL_ERROR "install did not copy the headers")
endif()

# 2. The consumer, three ways.
foreach(mode find_package add_subdirectory fetchcontent)
  set(bdir "${WORK_DIR}/consumer-${mode}")
  run(${CMAKE_COMMAND} -S "${CMAKE_CURRENT_LIST_DIR}" -B "${bdir}" ${common}
      -DQUENCH_CONSUME=${mode} -DCMAKE_PREFIX_PATH=${prefix} -DQUENCH_SOURCE_DIR=${QUENCH_SOURCE_DIR})
  run(${CMAKE_COMMAND} --build "${bdir}")
  run("${bdir}/consumer")
  run("${bdir}/consumer_onnx")
  message(STATUS "consumer via ${mode}: ok")
endforeach()
