# sl_test(NAME SOURCES... LIBS ...): one cmocka test binary per module,
# registered with ctest. Binaries land in build/bin/ as test_NAME.
function(sl_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT SLUICE_TESTS)
    return()
  endif()
  add_executable(test_${name} ${T_SOURCES})
  target_link_libraries(test_${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  target_include_directories(test_${name} PRIVATE ${CMAKE_SOURCE_DIR})
  add_test(NAME ${name} COMMAND test_${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "SLUICE_BIN_DIR=${CMAKE_BINARY_DIR}/bin;SLUICE_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()
