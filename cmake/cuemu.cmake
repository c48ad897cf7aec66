# cuemu.cmake — TOLK_CUDA_EMU=ON: build the CUDA backend (src/cuda_*.c and
# kernels/*.cu, unmodified) against the CPU emulator in tests/cuemu, so the
# GPU tests run on machines without a GPU. Included at the end of
# CMakeLists.txt after every target exists; the normal CPU build and the nvcc
# build never include it. See tests/cuemu/README.md.
#
#  - kernels/*.cu are rewritten at build time by tests/cuemu/rewrite.py
#    (launch syntax, extern __shared__) and compiled as C++17 by the host
#    C++ compiler against the fake CUDA headers in tests/cuemu/include;
#  - src/cuda_*.c are compiled as C against the same headers, with the
#    project's warnings;
#  - tests/cuemu/cuemu.cpp (the runtime, the fiber scheduler and cuBLASLt
#    on OpenBLAS) is linked into the library;
#  - TOLK_HAVE_CUDA=1 is defined for the library and everything linking it.

if(TOLK_HAVE_CUDA)
  message(FATAL_ERROR "TOLK_CUDA_EMU=ON replaces the CUDA build; configure with -DTOLK_CUDA=OFF")
endif()
enable_language(CXX)
find_package(Python3 REQUIRED COMPONENTS Interpreter)

set(CUEMU_DIR ${PROJECT_SOURCE_DIR}/tests/cuemu)
set(CUEMU_GEN ${PROJECT_BINARY_DIR}/cuemu)
file(MAKE_DIRECTORY ${CUEMU_GEN})

file(GLOB CUEMU_C_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/src/cuda_*.c)
file(GLOB CUEMU_CU_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/*.cu)
set(CUEMU_KERNEL_CPP)
foreach(cu IN LISTS CUEMU_CU_SOURCES)
  get_filename_component(n ${cu} NAME)
  set(out ${CUEMU_GEN}/${n}.cpp)
  add_custom_command(OUTPUT ${out}
    COMMAND Python3::Interpreter ${CUEMU_DIR}/rewrite.py ${cu} ${out}
    DEPENDS ${cu} ${CUEMU_DIR}/rewrite.py
    COMMENT "cuemu: rewriting kernels/${n} for the CPU emulator" VERBATIM)
  list(APPEND CUEMU_KERNEL_CPP ${out})
endforeach()
set_source_files_properties(${CUEMU_KERNEL_CPP} PROPERTIES
  INCLUDE_DIRECTORIES "${PROJECT_SOURCE_DIR}/kernels")
target_sources(tolk_obj PRIVATE ${CUEMU_C_SOURCES} ${CUEMU_KERNEL_CPP} ${CUEMU_DIR}/cuemu.cpp)
target_include_directories(tolk_obj BEFORE PRIVATE ${CUEMU_DIR}/include)
target_compile_definitions(tolk_obj PRIVATE TOLK_HAVE_CUDA=1 TOLK_CUEMU=1)
# The kernels: C++17, IEEE math (no fast-math), warnings on but not fatal for
# the emulator's sake of CUDA idioms (pragmas, unused launch parameters).
target_compile_options(tolk_obj PRIVATE
  $<$<COMPILE_LANGUAGE:CXX>:-std=gnu++17 -O2 -fno-fast-math -fno-strict-aliasing ${TOLK_C_FLAGS}
    -fvisibility=hidden -Wall -Wno-unknown-pragmas -Wno-unused-parameter -Wno-unused-function
    -Wno-unused-variable -Wno-unused-but-set-variable -Wno-sign-compare>)

# Everything that links the library sees the CUDA build: the define, the
# emulator's headers (tests include <cuda_runtime_api.h>) and the C++ runtime.
foreach(t tolk_static tolk_shared)
  target_include_directories(${t} BEFORE PUBLIC $<BUILD_INTERFACE:${CUEMU_DIR}/include>)
  target_compile_definitions(${t} PUBLIC $<BUILD_INTERFACE:TOLK_HAVE_CUDA=1 TOLK_CUEMU=1>)
  target_link_libraries(${t} PUBLIC stdc++)
endforeach()
list(LENGTH CUEMU_CU_SOURCES n_cu)
message(STATUS "tolk: CUDA backend on the CPU emulator (tests/cuemu), ${n_cu} kernel files")

# Whole transcriptions are slow when every kernel is emulated: one clip.
if(TEST test_cuda_transcribe)
  set_property(TEST test_cuda_transcribe APPEND PROPERTY ENVIRONMENT TOLK_GPU_CLIPS=1)
endif()
