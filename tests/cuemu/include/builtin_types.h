/* tolk CPU emulator: forwards to cuda_runtime_api.h */
#include "cuda_runtime_api.h"
