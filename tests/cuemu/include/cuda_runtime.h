/*
 * cuda_runtime.h — tolk CPU emulator (tests/cuemu): the runtime API plus, in
 * C++, the device-side language (cuemu_device.h).
 */
#ifndef CUEMU_CUDA_RUNTIME_H
#define CUEMU_CUDA_RUNTIME_H
#include "cuda_runtime_api.h"
#ifdef __cplusplus
#include "cuemu_device.h"
#endif
#endif
