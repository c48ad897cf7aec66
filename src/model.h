/*
 * model.h — the loaded model behind the public tolk_model handle: the
 * weights table (weights.h) plus, once attached, the prepared compute
 * weights. Private to the library.
 */
#ifndef TOLK_MODEL_H
#define TOLK_MODEL_H

#include "tolk.h"
#include "weights.h"

struct tolk_model {
    tolk_weights *w;    /* the file's tensors (owned; mmapped where possible) */
    tolk_device device; /* requested device (params.device) */

    /* ==== PREPARED COMPUTE WEIGHTS (network engineer: attach here) ====
     * tolk_model_load (model.c) creates the handle, then at the marked
     * place calls the network's preparation (e.g. tolk_net_new) and stores
     * the result in `net`, with its destructor in `net_free` and its
     * resident bytes in `net_mem_bytes`. NULL until then: the model can be
     * described but not run. */
    void *net;
    void (*net_free)(void *net);
    uint64_t net_mem_bytes;

    /* What transcriptions share besides the network (asr.h): tokenizer,
     * special ids, mel front end; made on first use by tolk_asr_of under
     * its lock, freed with the model. */
    struct tolk_asr *asr;

    /* Description strings (owned, returned by tolk_model_describe). */
    char dtypes[64];
    const char *size_name; /* static storage */
};

#endif /* TOLK_MODEL_H */
