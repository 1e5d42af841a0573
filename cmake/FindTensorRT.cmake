# FindTensorRT: the TensorRT and ONNX-parser headers, nothing else.
#
# ddad_rt loads libnvinfer and libnvonnxparser at run time (dlopen), so that one wheel imports
# and runs on machines without TensorRT; only the headers are needed to build.
#
# Looks in TensorRT_ROOT (CMake variable or environment variable: a folder holding include/,
# as the SDK tarball, JetPack's /usr and NVIDIA's containers lay it out), then the standard
# include paths (/usr/include/x86_64-linux-gnu and /usr/include/aarch64-linux-gnu, where the
# Debian packages libnvinfer-dev and libnvonnxparsers-dev put them).
#
# Defines:
#   TensorRT_FOUND, TensorRT_INCLUDE_DIR, TensorRT_VERSION (e.g. 10.3.0),
#   TensorRT_VERSION_MAJOR, and the imported target TensorRT::headers.

set(_trt_hints)
if(TensorRT_ROOT)
  list(APPEND _trt_hints "${TensorRT_ROOT}")
endif()
if(DEFINED ENV{TensorRT_ROOT})
  list(APPEND _trt_hints "$ENV{TensorRT_ROOT}")
endif()

find_path(TensorRT_INCLUDE_DIR NvInfer.h
  HINTS ${_trt_hints}
  PATH_SUFFIXES include include/x86_64-linux-gnu include/aarch64-linux-gnu)
find_path(TensorRT_ONNX_PARSER_INCLUDE_DIR NvOnnxParser.h
  HINTS ${_trt_hints} ${TensorRT_INCLUDE_DIR}
  PATH_SUFFIXES include include/x86_64-linux-gnu include/aarch64-linux-gnu)

if(TensorRT_INCLUDE_DIR AND EXISTS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h")
  file(READ "${TensorRT_INCLUDE_DIR}/NvInferVersion.h" _trt_version_h)
  # Releases up to 10.x define NV_TENSORRT_MAJOR as a number; 11.x defines it through
  # TRT_MAJOR_ENTERPRISE. Read whichever is a number.
  foreach(_part MAJOR MINOR PATCH)
    set(_value "")
    foreach(_name "NV_TENSORRT_${_part}" "TRT_${_part}_ENTERPRISE")
      if(_value STREQUAL "" AND _trt_version_h MATCHES "#define ${_name} ([0-9]+)")
        set(_value "${CMAKE_MATCH_1}")
      endif()
    endforeach()
    set(TensorRT_VERSION_${_part} "${_value}")
  endforeach()
  set(TensorRT_VERSION
      "${TensorRT_VERSION_MAJOR}.${TensorRT_VERSION_MINOR}.${TensorRT_VERSION_PATCH}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(TensorRT
  REQUIRED_VARS TensorRT_INCLUDE_DIR TensorRT_ONNX_PARSER_INCLUDE_DIR TensorRT_VERSION_MAJOR
  VERSION_VAR TensorRT_VERSION
  REASON_FAILURE_MESSAGE
    "set TensorRT_ROOT to a folder holding include/NvInfer.h and include/NvOnnxParser.h")

if(TensorRT_FOUND AND NOT TARGET TensorRT::headers)
  add_library(TensorRT::headers INTERFACE IMPORTED)
  set_target_properties(TensorRT::headers PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${TensorRT_INCLUDE_DIR};${TensorRT_ONNX_PARSER_INCLUDE_DIR}")
endif()
mark_as_advanced(TensorRT_INCLUDE_DIR TensorRT_ONNX_PARSER_INCLUDE_DIR)
