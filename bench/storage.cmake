# sluice-storage-bench: raw disk vs durable appends vs page-cache reads.
add_executable(sluice-storage-bench ${CMAKE_CURRENT_SOURCE_DIR}/storage_bench.c)
target_link_libraries(sluice-storage-bench PRIVATE sl_storage)
