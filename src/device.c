/*
 * device.c — whether the CUDA backend is built and a device is present.
 * The CUDA runtime is only referenced in CUDA builds (see cuda_*.c).
 */
#include "internal.h"

#ifdef TOLK_HAVE_CUDA
int tolk_cuda_device_count(void); /* cuda_runtime.c */
#endif

int tolk_cuda_available(void) {
#ifdef TOLK_HAVE_CUDA
    return tolk_cuda_device_count() > 0;
#else
    return 0;
#endif
}
