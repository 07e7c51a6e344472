# image: JPEG/PNG decoding and cv2-exact preprocessing (tests/image/), in their own executable
# because it links quench::image (libjpeg-turbo, libpng). Included at the end of
# tests/CMakeLists.txt. The references come from python3-opencv and PIL
# (tests/image/make_image_reference.py), regenerated into the build tree before the tests run.
if(TARGET quench::image)
  execute_process(COMMAND ${QUENCH_REFERENCE_PYTHON} -c "import cv2, PIL, numpy"
                  RESULT_VARIABLE _quench_image_py OUTPUT_QUIET ERROR_QUIET)
  if(NOT _quench_image_py EQUAL 0)
    message(STATUS "quench: python3-opencv or python3-pil missing for ${QUENCH_REFERENCE_PYTHON}: image tests disabled")
  else()
    quench_add_layer_tests(image LIBS quench::image)
    add_test(NAME image_reference_data
      COMMAND ${QUENCH_REFERENCE_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/image/make_image_reference.py
              ${CMAKE_CURRENT_BINARY_DIR}/data/image)
    set_tests_properties(image_reference_data PROPERTIES FIXTURES_SETUP image_ref LABELS "reference" TIMEOUT 300)
    set_tests_properties(image PROPERTIES FIXTURES_REQUIRED image_ref)
  endif()
endif()
