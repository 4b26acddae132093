# Build CUDA sources as host C++ that runs on the CPU, against the runtime in this folder.
#   include(cuda_cpu/cuda_cpu.cmake)
#   cuda_cpu_add_library(<name> SHARED|STATIC <sources>...)   # .cu files go through cu2cpp.py
# Needs the CUDA headers (types, half/bfloat16 conversions), not nvcc or a GPU.
# -DCUDA_CPU_SANITIZE=ON builds with AddressSanitizer + UBSan (load with libasan preloaded).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
find_path(CUDA_CPU_CUDA_INCLUDE_DIR cuda_fp16.h
  HINTS ENV CUDA_HOME ENV CUDA_PATH /usr/local/cuda
  PATH_SUFFIXES include)
if(NOT CUDA_CPU_CUDA_INCLUDE_DIR)
  message(FATAL_ERROR "cuda_cpu: CUDA headers not found (cuda_fp16.h, cuda_runtime_api.h); "
    "set -DCUDA_CPU_CUDA_INCLUDE_DIR=<CUDA toolkit>/include")
endif()
option(CUDA_CPU_SANITIZE "Build the CPU kernels and runtime with -fsanitize=address,undefined" OFF)

set(CUDA_CPU_DIR ${CMAKE_CURRENT_LIST_DIR})
add_library(cuda_cpu_runtime OBJECT
  ${CUDA_CPU_DIR}/fiber.cpp ${CUDA_CPU_DIR}/scheduler.cpp ${CUDA_CPU_DIR}/runtime_api.cpp)
set_target_properties(cuda_cpu_runtime PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(cuda_cpu_runtime PUBLIC ${CUDA_CPU_DIR})
target_include_directories(cuda_cpu_runtime SYSTEM PUBLIC ${CUDA_CPU_CUDA_INCLUDE_DIR})
# CUDA-only pragmas (#pragma unroll) mean nothing to the host compiler
target_compile_options(cuda_cpu_runtime PUBLIC -Wno-unknown-pragmas)
if(CUDA_CPU_SANITIZE)
  set(_cuda_cpu_san -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
  target_compile_options(cuda_cpu_runtime PUBLIC ${_cuda_cpu_san})
  target_link_options(cuda_cpu_runtime PUBLIC ${_cuda_cpu_san})
endif()

function(cuda_cpu_add_library name kind)
  set(sources)
  foreach(src IN LISTS ARGN)
    get_filename_component(abs ${src} ABSOLUTE)
    if(abs MATCHES "\\.cu$")
      get_filename_component(stem ${abs} NAME)
      set(out ${CMAKE_CURRENT_BINARY_DIR}/cuda_cpu/${name}/${stem}.cpp)
      add_custom_command(OUTPUT ${out}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/cuda_cpu/${name}
        COMMAND ${Python3_EXECUTABLE} ${CUDA_CPU_DIR}/cu2cpp.py ${abs} ${out}
        DEPENDS ${abs} ${CUDA_CPU_DIR}/cu2cpp.py
        COMMENT "cu2cpp ${stem}")
      list(APPEND sources ${out})
      # the rewritten file includes its neighbours ("x.h") from the .cu's folder
      get_filename_component(dir ${abs} DIRECTORY)
      list(APPEND includes ${dir})
    else()
      list(APPEND sources ${abs})
    endif()
  endforeach()
  add_library(${name} ${kind} ${sources})
  target_link_libraries(${name} PRIVATE cuda_cpu_runtime)
  target_include_directories(${name} PRIVATE ${includes})
  set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()
