/*
 * cuda_census.c — see cuda_census.h.
 */
#include "cuda_census.h"

#include <stdlib.h>
#include <string.h>

int cu_census_init(cu_census *cs) {
    memset(cs, 0, sizeof *cs);
    const char *e = getenv("TOLK_CUDA_CENSUS");
    if (!e || !*e || strcmp(e, "0") == 0) return 0;
    if (pthread_mutex_init(&cs->mu, NULL) != 0) return -1;
    cs->mode = strcmp(e, "dry") == 0 ? 2 : 1;
    cs->c.dry = cs->mode == 2;
    return 0;
}

void cu_census_destroy(cu_census *cs) {
    if (cs->mode) pthread_mutex_destroy(&cs->mu);
    cs->mode = 0;
}

void cu_census_add(cu_census *cs, const char *name, int kernels, double bytes, double flops,
                   int capturing) {
    if (!cs->mode || kernels <= 0) return;
    pthread_mutex_lock(&cs->mu);
    tolk_census *c = &cs->c;
    int i = 0;
    while (i < c->n && strcmp(c->row[i].name, name) != 0)
        i++;
    if (i == c->n && c->n < TOLK_CENSUS_ROWS) c->row[c->n++].name = name;
    if (i < c->n) {
        tolk_census_row *r = &c->row[i];
        r->kernels += (uint64_t)kernels;
        if (capturing) r->nodes += (uint64_t)kernels;
        r->bytes += bytes;
        r->flops += flops;
    }
    pthread_mutex_unlock(&cs->mu);
}

void cu_census_nodes(cu_census *cs, int mem_nodes, int copy_nodes, int capturing) {
    if (!cs->mode || !capturing) return;
    pthread_mutex_lock(&cs->mu);
    cs->c.mem_nodes += (uint64_t)mem_nodes;
    cs->c.copy_nodes += (uint64_t)copy_nodes;
    pthread_mutex_unlock(&cs->mu);
}

void cu_census_get(cu_census *cs, tolk_census *out, int reset) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!cs->mode) return;
    pthread_mutex_lock(&cs->mu);
    *out = cs->c;
    if (reset) {
        memset(&cs->c, 0, sizeof cs->c);
        cs->c.dry = cs->mode == 2;
    }
    pthread_mutex_unlock(&cs->mu);
}
