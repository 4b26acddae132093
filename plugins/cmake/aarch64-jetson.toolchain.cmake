# Cross-compile for Jetson (aarch64, JetPack 6: CUDA 12.x, TensorRT 10.3, Orin = sm_87).
#   cmake -S plugins -B build-jetson -DCMAKE_TOOLCHAIN_FILE=plugins/cmake/aarch64-jetson.toolchain.cmake \
#         -DTENSORRT_ROOT=/path/to/jetson/sysroot/usr -DCUDA_TOOLKIT_ROOT_DIR=/usr/local/cuda-12.6
# Building natively on the Jetson needs no toolchain file: cmake picks sm_87 from SAINT_JETSON=ON.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_CUDA_HOST_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_CUDA_FLAGS_INIT "-ccbin aarch64-linux-gnu-g++")
set(CMAKE_CUDA_ARCHITECTURES 87 CACHE STRING "Jetson Orin")
if(DEFINED ENV{JETSON_SYSROOT})
  set(CMAKE_SYSROOT $ENV{JETSON_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH $ENV{JETSON_SYSROOT})
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
