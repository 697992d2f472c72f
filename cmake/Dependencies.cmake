# Every third-party dependency is found here, once. All come from Debian packages
# (scripts/install-deps.sh); a CUDA LibTorch is picked up with -DCMAKE_PREFIX_PATH=<torch>/share/cmake.
find_package(Threads REQUIRED)
find_package(PkgConfig REQUIRED)
find_package(nlohmann_json 3 REQUIRED)
find_package(Torch REQUIRED)
find_package(OpenCV REQUIRED COMPONENTS core imgcodecs imgproc)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(ZLIB REQUIRED)
find_package(JPEG REQUIRED)
find_package(PNG REQUIRED)
find_package(GIF REQUIRED)
find_package(ICU REQUIRED COMPONENTS uc i18n)
find_package(CLI11 CONFIG REQUIRED)
pkg_check_modules(WEBP REQUIRED IMPORTED_TARGET libwebp)
pkg_check_modules(WEBPDEMUX REQUIRED IMPORTED_TARGET libwebpdemux)  # WebPAnimDecoder, as Pillow reads WebP
find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
find_library(XXHASH_LIBRARY xxhash REQUIRED)
add_library(clipshard_xxhash INTERFACE)
target_include_directories(clipshard_xxhash INTERFACE ${XXHASH_INCLUDE_DIR})
target_link_libraries(clipshard_xxhash INTERFACE ${XXHASH_LIBRARY})
# Torch's exported flags include -D_GLIBCXX_USE_CXX11_ABI; keep them on every target that links it.

# add_library() refuses a static library without sources; a folder that is still empty (a part being
# written) gets one generated empty translation unit instead.
function(clipshard_static_library name)
  if(NOT ARGN)
    set(empty ${CMAKE_CURRENT_BINARY_DIR}/${name}_empty.cpp)
    file(WRITE ${empty} "")
    set(ARGN ${empty})
  endif()
  add_library(${name} STATIC ${ARGN})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()
