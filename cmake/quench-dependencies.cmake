# Finds what quench's targets link, from the system (Debian packages); nothing is fetched.
# Shared by the build tree and the installed package (quench-config.cmake includes it).
include(CMakeFindDependencyMacro)

if(NOT TARGET Eigen3::Eigen)
  find_package(Eigen3 3.3 REQUIRED NO_MODULE)
endif()

if(NOT TARGET xtensor)
  find_package(xtensor QUIET)
endif()

if(NOT DEFINED QUENCH_WITH_ONNX OR QUENCH_WITH_ONNX)
  if(NOT TARGET onnx_proto)
    find_package(ONNX QUIET)
  endif()
  if(TARGET onnx_proto AND NOT TARGET protobuf::libprotobuf)
    find_package(Protobuf QUIET)
  endif()
endif()

if(NOT DEFINED QUENCH_WITH_IMAGE OR QUENCH_WITH_IMAGE)
  if(NOT TARGET JPEG::JPEG)
    find_package(JPEG QUIET)
  endif()
  if(NOT TARGET PNG::PNG)
    find_package(PNG QUIET)
  endif()
endif()
