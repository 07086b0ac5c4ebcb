# sluice-bench: produce / consume / queue throughput and latency over the
# binary protocol through libsluice; STOMP mode when its file is present.
set(SL_BENCH_SRC ${CMAKE_CURRENT_SOURCE_DIR}/sluice_bench.c)
set(SL_BENCH_LIBS sluice_static)
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/sluice_bench_stomp.c AND
   EXISTS ${CMAKE_SOURCE_DIR}/broker/stomp_frame.c)
  list(APPEND SL_BENCH_SRC ${CMAKE_CURRENT_SOURCE_DIR}/sluice_bench_stomp.c
       ${CMAKE_SOURCE_DIR}/broker/stomp_frame.c)
endif()
add_executable(sluice-bench ${SL_BENCH_SRC})
target_include_directories(sluice-bench PRIVATE ${CMAKE_SOURCE_DIR})
target_link_libraries(sluice-bench PRIVATE ${SL_BENCH_LIBS} Threads::Threads)
