# Sharded calibration on a real single-node Slurm cluster (Debian's slurm-wlm, started and
# stopped by the test itself) and through the Kubernetes Indexed Job manifest's scripts; the merged
# state must be byte-identical to one pass. Included at the end of tests/CMakeLists.txt.
# Skipped (exit 77) only when slurm-wlm is not installed (cmake/install-deps.sh test installs it).
if(TARGET quench::onnx AND QUENCH_BUILD_EXAMPLES)
  add_test(NAME slurm_shards
    COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/slurm/slurm_shards_test.py
            --quench $<TARGET_FILE:quench_cli> --source-dir ${PROJECT_SOURCE_DIR})
  set_tests_properties(slurm_shards PROPERTIES LABELS "example;slurm" TIMEOUT 180 SKIP_RETURN_CODE 77)
endif()
