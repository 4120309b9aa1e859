# `cpack -G DEB` in the build tree: one .deb of everything the install
# rules list (cmake/install.cmake), for Debian 12 and its derivatives.
# Depends is computed by dpkg-shlibdeps (package dpkg-dev) from the
# libraries the binaries link: libc6, libjpeg62-turbo, liblmdb0,
# libnettle8, libpng16-16, libsqlite3-0, libwebp7, zlib1g, libdeflate0.
# libarchive13 is only loaded when an archive is packed (src/sources/libarchive.h),
# so it is recommended, which apt installs by default, not required: the
# reader and every other source work without it. Included from
# CMakeLists.txt when imgpack is the top-level project.
set(IMGPACK_PACKAGE_CONTACT "imgpack maintainers <imgpack@invalid>"
    CACHE STRING "Maintainer field of the .deb")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME imgpack)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "\
The imgpack command packs image datasets (ImageFolder trees, archives,
list files, MNIST-style files) into LMDB stores with a SQLite catalog,
with the pixels of torchvision's Resize(256) + CenterCrop(224). The C
library reads them at training time; its headers, pkg-config file and
CMake package (imgpack::imgpack) are included.")
set(CPACK_PACKAGE_CONTACT "${IMGPACK_PACKAGE_CONTACT}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS libarchive13)
# A shlibs file and the ldconfig trigger, as Debian's library packages have.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
include(CPack)
