# The layers below the API include only the value-type public headers: no header or source of src/math,
# src/plan, src/cpu or kernels/ includes the operation headers (stats.hpp, normalize.hpp) or the
# Normalizer class (normalizer.hpp). Run as: cmake -DSOURCE_DIR=<repo> -P check_layering.cmake
file(GLOB_RECURSE files "${SOURCE_DIR}/src/math/*" "${SOURCE_DIR}/src/plan/*" "${SOURCE_DIR}/src/cpu/*"
     "${SOURCE_DIR}/kernels/*")
set(violations "")
foreach(f IN LISTS files)
  file(STRINGS "${f}" lines REGEX "#include \"normkit/(stats|normalize|normalizer)\\.hpp\"")
  if(lines)
    list(APPEND violations "${f}: ${lines}")
  endif()
endforeach()
list(LENGTH files count)
if(count EQUAL 0)
  message(FATAL_ERROR "check_layering: no source files found under ${SOURCE_DIR}")
endif()
if(violations)
  string(REPLACE ";" "\n" text "${violations}")
  message(FATAL_ERROR "layering: these files include an API header instead of a value-type header:\n${text}")
endif()
message(STATUS "layering: ${count} files of src/math, src/plan, src/cpu and kernels/ include only value-type headers")
