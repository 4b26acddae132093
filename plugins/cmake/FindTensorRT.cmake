# Finds TensorRT's headers (and, when present, libnvinfer).
#   Hints: -DTensorRT_INCLUDE_DIR=..., -DTENSORRT_ROOT=... or $ENV{TENSORRT_ROOT},
#          an installed `tensorrt` Python package (for the library directory),
#          the system paths of Debian/Ubuntu/JetPack packages.
# Defines: TensorRT_FOUND, TensorRT_INCLUDE_DIR, TensorRT_VERSION, TensorRT_LIBRARY (may be empty)
set(_trt_roots ${TENSORRT_ROOT} $ENV{TENSORRT_ROOT})
find_path(TensorRT_INCLUDE_DIR NvInferRuntime.h
  HINTS ${_trt_roots}
  PATH_SUFFIXES include include/tensorrt
  PATHS /usr/include/x86_64-linux-gnu /usr/include/aarch64-linux-gnu /usr/local/tensorrt/include)
if(TensorRT_INCLUDE_DIR AND NOT EXISTS "${TensorRT_INCLUDE_DIR}/NvInferRuntime.h")
  message(WARNING "TensorRT_INCLUDE_DIR=${TensorRT_INCLUDE_DIR} has no NvInferRuntime.h")
  set(TensorRT_INCLUDE_DIR "TensorRT_INCLUDE_DIR-NOTFOUND" CACHE PATH "TensorRT include directory" FORCE)
endif()

set(_trt_lib_hints)
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import os, tensorrt_libs; print(os.path.dirname(tensorrt_libs.__file__))"
    OUTPUT_VARIABLE _trt_py_libs OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _trt_py_rc)
  if(_trt_py_rc EQUAL 0)
    list(APPEND _trt_lib_hints ${_trt_py_libs})
  endif()
endif()
if(TensorRT_INCLUDE_DIR AND EXISTS "${TensorRT_INCLUDE_DIR}/NvInferVersion.h")
  file(READ "${TensorRT_INCLUDE_DIR}/NvInferVersion.h" _trt_version_h)
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX MATCH "#define (NV_TENSORRT|TRT)_${_part}[A-Z_]* ([0-9]+)" _m "${_trt_version_h}")
    set(_trt_${_part} "${CMAKE_MATCH_2}")
  endforeach()
  set(TensorRT_VERSION "${_trt_MAJOR}.${_trt_MINOR}.${_trt_PATCH}")
endif()

# the runtime of the headers' major (the wheel and the tarball ship only libnvinfer.so.<major>)
find_library(TensorRT_LIBRARY NAMES nvinfer nvinfer.so.${_trt_MAJOR} libnvinfer.so.${_trt_MAJOR}
  HINTS ${_trt_roots} ${_trt_lib_hints}
  PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu lib/aarch64-linux-gnu)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(TensorRT REQUIRED_VARS TensorRT_INCLUDE_DIR VERSION_VAR TensorRT_VERSION)
