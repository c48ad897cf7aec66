/*
 * cuda_runtime.c — thin host-side helpers over the CUDA runtime (CUDA builds
 * only). Never fails hard: no driver or no device is a count of 0.
 */
#include "internal.h"

#include <cuda_runtime_api.h>

int tolk_cuda_device_count(void);

int tolk_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky error */
        return 0;
    }
    return n;
}
