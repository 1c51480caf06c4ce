# Runs the real binary from a directory outside the source tree (the catalog is embedded) and
# checks the issue's acceptance value: Llama-3.1-8B, batch 1, context 8192 -> KV 1,073,741,824 B.
execute_process(COMMAND ${MEMTAX} estimate --model llama-3.1-8b --gpu h100-sxm --batch 1 --context 8192 --format json
                WORKING_DIRECTORY /tmp RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "memtax exited ${rc}: ${err}")
endif()
string(JSON kv GET "${out}" per_gpu kv_cache_bytes)
if(NOT kv STREQUAL "1073741824")
  message(FATAL_ERROR "kv_cache_bytes = ${kv}, expected 1073741824")
endif()
execute_process(COMMAND ${MEMTAX} estimate --model no-such-model WORKING_DIRECTORY /tmp RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "unknown model: exit ${rc}, expected 2")
endif()
