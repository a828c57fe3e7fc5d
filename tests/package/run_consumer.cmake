# ctest -R package_consumer: installs the normkit build tree into a scratch prefix, then configures, builds and
# runs tests/package/consumer against it through find_package(normkit).
#   cmake -DNORMKIT_BINARY_DIR=... -DCONSUMER_SOURCE_DIR=... -DWORK_DIR=... [-DCMAKE_GENERATOR=...] -P run_consumer.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var NORMKIT_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

set(prefix "${WORK_DIR}/prefix")
set(build "${WORK_DIR}/build")
# Start from scratch so a stale install or cache cannot hide a broken package.
file(REMOVE_RECURSE "${prefix}" "${build}")
file(MAKE_DIRECTORY "${WORK_DIR}")

# Runs one step; stops with its output when it fails.
function(run_step name)
  execute_process(COMMAND ${ARGN}
                  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output
                  WORKING_DIRECTORY "${WORK_DIR}")
  if(NOT result EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "package consumer: ${name} failed (${result})\ncommand: ${command}\n${output}")
  endif()
  message(STATUS "package consumer: ${name}: ok")
  set(step_output "${output}" PARENT_SCOPE)
endfunction()

run_step("install" "${CMAKE_COMMAND}" --install "${NORMKIT_BINARY_DIR}" --prefix "${prefix}")

set(configure_args -S "${CONSUMER_SOURCE_DIR}" -B "${build}" "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=Release)
if(DEFINED CMAKE_GENERATOR AND NOT CMAKE_GENERATOR STREQUAL "")
  list(APPEND configure_args -G "${CMAKE_GENERATOR}")
endif()
run_step("configure" "${CMAKE_COMMAND}" ${configure_args})
run_step("build" "${CMAKE_COMMAND}" --build "${build}" --config Release)

# Single-config generators put the executable in the build folder, multi-config ones in Release/.
set(exe "")
foreach(candidate "${build}/normkit_consumer" "${build}/Release/normkit_consumer" "${build}/normkit_consumer.exe"
                  "${build}/Release/normkit_consumer.exe")
  if(EXISTS "${candidate}")
    set(exe "${candidate}")
    break()
  endif()
endforeach()
if(exe STREQUAL "")
  message(FATAL_ERROR "package consumer: built executable normkit_consumer not found under ${build}")
endif()
run_step("run" "${exe}")
message(STATUS "${step_output}")
