# What `cmake --install` puts under the prefix (GNUInstallDirs layout):
#   bin/imgpack                          the command
#   lib/libimgpack.so.*, lib/libimgpack.a
#   include/imgpack/*.h                  the public headers and version.h
#   lib/pkgconfig/imgpack.pc             pkg-config --cflags --libs imgpack
#   lib/cmake/imgpack/                   find_package(imgpack): imgpack::imgpack
#   share/man/man1/imgpack.1             made from the --help texts
#   share/bash-completion/completions/imgpack
# Every file is relocatable (the .pc and the CMake package find the prefix
# from where they lie), so one build serves `cmake --install --prefix P`,
# DESTDIR and the .deb alike. Included from CMakeLists.txt.
include(CMakePackageConfigHelpers)

# The installed command finds the library through a path relative to
# itself, unless the library goes where the loader looks anyway (as with
# -DCMAKE_INSTALL_PREFIX=/usr, for the .deb: Debian packages carry no
# RPATH).
file(RELATIVE_PATH imgpack_bin_to_lib ${CMAKE_INSTALL_FULL_BINDIR}
     ${CMAKE_INSTALL_FULL_LIBDIR})
if(NOT CMAKE_INSTALL_FULL_LIBDIR IN_LIST CMAKE_C_IMPLICIT_LINK_DIRECTORIES)
  set_target_properties(imgpack-cli PROPERTIES
                        INSTALL_RPATH "$ORIGIN/${imgpack_bin_to_lib}")
endif()

install(TARGETS imgpack EXPORT imgpackTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS imgpack-cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS imgpack_static ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/imgpack
                  ${IMGPACK_GENERATED_INCLUDE}/imgpack
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")

# imgpack.pc: the prefix is found from the .pc file's own directory. The
# libraries a static link needs are listed as flags, not as pkg-config
# modules (Requires.private), so that the shared library's users need no
# -dev package of them: pkg-config --static only wants the -l flags.
file(RELATIVE_PATH IMGPACK_PC_TO_PREFIX
     ${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" IMGPACK_PC_TO_PREFIX ${IMGPACK_PC_TO_PREFIX})
set(imgpack_pc_libs ${LMDB_LIBRARIES} ${JPEG_LIBRARIES} ${PNG_LIBRARIES}
    ${WEBP_LIBRARIES} ${SQLITE_LIBRARIES} ${NETTLE_LIBRARIES} ${ZLIB_LIBRARIES}
    ${DEFLATE_LIBRARIES} m ${CMAKE_DL_LIBS})
list(TRANSFORM imgpack_pc_libs PREPEND -l)
list(APPEND imgpack_pc_libs ${CMAKE_THREAD_LIBS_INIT})
list(JOIN imgpack_pc_libs " " IMGPACK_PC_PRIVATE_LIBS)
configure_file(${PROJECT_SOURCE_DIR}/cmake/imgpack.pc.in
               ${PROJECT_BINARY_DIR}/imgpack.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/imgpack.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

set(imgpack_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/imgpack)
install(EXPORT imgpackTargets NAMESPACE imgpack::
        DESTINATION ${imgpack_cmake_dir})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/imgpackConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/imgpackConfig.cmake
                              INSTALL_DESTINATION ${imgpack_cmake_dir})
# 0.x releases may change the API between minor versions.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/imgpackConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/imgpackConfig.cmake
              ${PROJECT_BINARY_DIR}/imgpackConfigVersion.cmake
        DESTINATION ${imgpack_cmake_dir})

install(FILES ${PROJECT_BINARY_DIR}/imgpack.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${PROJECT_SOURCE_DIR}/tools/imgpack.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME imgpack)
