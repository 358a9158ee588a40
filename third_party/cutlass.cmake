# Finds the CUTLASS headers and exposes them as the interface target
# `cutlass_headers`. Order: -DCUTLASS_DIR=<checkout or include root>, then the
# `nvidia-cutlass` wheel installed in the Python that runs the build.
set(CUTLASS_DIR "" CACHE PATH "CUTLASS checkout (containing include/cutlass) — overrides the nvidia-cutlass wheel")

set(_fct_cutlass_include "")
if(CUTLASS_DIR)
  foreach(_candidate "${CUTLASS_DIR}/include" "${CUTLASS_DIR}")
    if(EXISTS "${_candidate}/cutlass/cutlass.h")
      set(_fct_cutlass_include "${_candidate}")
      break()
    endif()
  endforeach()
  if(NOT _fct_cutlass_include)
    message(FATAL_ERROR "CUTLASS_DIR=${CUTLASS_DIR} has no include/cutlass/cutlass.h")
  endif()
else()
  find_package(Python COMPONENTS Interpreter REQUIRED)
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
            "import cutlass_library, os; print(os.path.join(os.path.dirname(cutlass_library.__file__), 'source', 'include'))"
    OUTPUT_VARIABLE _fct_cutlass_include
    OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _fct_rc
    ERROR_QUIET)
  if(NOT _fct_rc EQUAL 0 OR NOT EXISTS "${_fct_cutlass_include}/cutlass/cutlass.h")
    message(FATAL_ERROR
      "CUTLASS headers not found. Install the wheel (pip install nvidia-cutlass==4.2.0.0) "
      "or pass -DCUTLASS_DIR=/path/to/cutlass. See third_party/README.md.")
  endif()
endif()

message(STATUS "CUTLASS headers: ${_fct_cutlass_include}")
add_library(cutlass_headers INTERFACE)
target_include_directories(cutlass_headers SYSTEM INTERFACE "${_fct_cutlass_include}")
