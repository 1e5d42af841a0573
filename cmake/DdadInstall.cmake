# Installing the SDK: headers, libddad_rt, a CMake package (find_package(ddad_rt CONFIG) ->
# ddad_rt::ddad_rt) and a pkg-config file. Standalone (`cmake --install build --prefix P`)
# the usual layout P/{include,lib}; in a pip build the same tree inside the Python package,
# site-packages/ddad_rt/sdk, which `ddad_rt.cmake_prefix_path` points to.
include(CMakePackageConfigHelpers)

if(DDAD_RT_SDK_IN_WHEEL)
  set(DDAD_RT_SDK_PREFIX "ddad_rt/sdk/")
else()
  set(DDAD_RT_SDK_PREFIX "")
endif()
set(_inc "${DDAD_RT_SDK_PREFIX}${CMAKE_INSTALL_INCLUDEDIR}")
set(_lib "${DDAD_RT_SDK_PREFIX}${CMAKE_INSTALL_LIBDIR}")
set(_cmake "${_lib}/cmake/ddad_rt")

# The public headers only: the C API and the C++ API it is built on.
install(FILES
  cpp/include/ddad_rt/ddad_rt.h
  cpp/include/ddad_rt/export.h
  cpp/include/ddad_rt/engine.h
  cpp/include/ddad_rt/bundle.h
  cpp/include/ddad_rt/device.h
  cpp/include/ddad_rt/errors.h
  cpp/include/ddad_rt/scores.h
  cpp/include/ddad_rt/tensor.h
  DESTINATION "${_inc}/ddad_rt")

if(DDAD_RT_SDK_IN_WHEEL)
  # One file, no links (a wheel is a zip): libddad_rt.so.0, which the package's targets and
  # the pkg-config file name directly.
  install(TARGETS ddad_rt EXPORT ddad_rtTargets
          LIBRARY DESTINATION "${_lib}" NAMELINK_SKIP
          INCLUDES DESTINATION "${_inc}")
else()
  install(TARGETS ddad_rt EXPORT ddad_rtTargets
          LIBRARY DESTINATION "${_lib}"
          ARCHIVE DESTINATION "${_lib}"
          RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}"
          INCLUDES DESTINATION "${_inc}")
endif()
install(EXPORT ddad_rtTargets NAMESPACE ddad_rt:: DESTINATION "${_cmake}")

configure_package_config_file(cmake/ddad_rtConfig.cmake.in
  "${CMAKE_CURRENT_BINARY_DIR}/ddad_rtConfig.cmake"
  INSTALL_DESTINATION "${_cmake}")
write_basic_package_version_file("${CMAKE_CURRENT_BINARY_DIR}/ddad_rtConfigVersion.cmake"
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/ddad_rtConfig.cmake"
              "${CMAKE_CURRENT_BINARY_DIR}/ddad_rtConfigVersion.cmake"
        DESTINATION "${_cmake}")

# pkg-config: relocatable (prefix from the .pc file's own folder).
if(DDAD_RT_SDK_IN_WHEEL)
  set(DDAD_RT_PC_LIBS "-L\${libdir} -l:libddad_rt.so.${PROJECT_VERSION_MAJOR}")
else()
  set(DDAD_RT_PC_LIBS "-L\${libdir} -lddad_rt")
endif()
file(RELATIVE_PATH DDAD_RT_PC_TO_PREFIX "/${_lib}/pkgconfig" "/${DDAD_RT_SDK_PREFIX}")
configure_file(cmake/ddad_rt.pc.in "${CMAKE_CURRENT_BINARY_DIR}/ddad_rt.pc" @ONLY)
install(FILES "${CMAKE_CURRENT_BINARY_DIR}/ddad_rt.pc" DESTINATION "${_lib}/pkgconfig")
