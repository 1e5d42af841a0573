# The default CUDA architectures: SASS for Turing (7.5) through Blackwell (12.0), including
# Jetson Orin (8.7), plus PTX for the newest so that later GPUs JIT-compile it. Architectures
# the nvcc in use cannot build are dropped (CUDA 12.0 has no 10.0 or 12.0; CUDA 13 has no
# pre-Turing). CMAKE_CUDA_ARCHITECTURES (or the CUDAARCHS environment variable) overrides it.
if(DEFINED CMAKE_CUDA_ARCHITECTURES OR DEFINED ENV{CUDAARCHS})
  return()
endif()
set(_ddad_wanted 75 80 86 87 89 90 100 120)
execute_process(COMMAND "${CMAKE_CUDA_COMPILER}" --list-gpu-arch
                OUTPUT_VARIABLE _ddad_listed RESULT_VARIABLE _ddad_rc ERROR_QUIET)
set(_ddad_archs)
foreach(_arch IN LISTS _ddad_wanted)
  if(NOT _ddad_rc EQUAL 0 OR _ddad_listed MATCHES "compute_${_arch}([^0-9]|$)")
    list(APPEND _ddad_archs ${_arch})
  endif()
endforeach()
if(NOT _ddad_archs)
  message(FATAL_ERROR "${CMAKE_CUDA_COMPILER} supports none of ${_ddad_wanted}; "
                      "set CMAKE_CUDA_ARCHITECTURES")
endif()
# SASS for each; the newest also as PTX (CMake: "NN" = real + virtual, "NN-real" = SASS only).
list(POP_BACK _ddad_archs _ddad_newest)
set(_ddad_list)
foreach(_arch IN LISTS _ddad_archs)
  list(APPEND _ddad_list "${_arch}-real")
endforeach()
list(APPEND _ddad_list "${_ddad_newest}")
set(CMAKE_CUDA_ARCHITECTURES "${_ddad_list}" CACHE STRING "CUDA architectures to build for")
