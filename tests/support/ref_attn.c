/*
 * ref_attn.c — plain loops for attn_weights (see ref_attn.h).
 */
#include "ref_attn.h"

#include <math.h>
#include <stdlib.h>

void ref_attn_weights(const float *q, size_t ldq, const float *k, size_t ldk, int n_q, int n_keys,
                      const int *heads, int n_heads, int dh, float scale, float *out) {
    double *s = malloc((size_t)(n_keys > 0 ? n_keys : 1) * sizeof *s);
    if (!s) return;
    for (int p = 0; p < n_heads; p++)
        for (int i = 0; i < n_q; i++) {
            const size_t h = (size_t)heads[p] * (size_t)dh;
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < n_keys; j++) {
                double d = 0;
                for (int c = 0; c < dh; c++)
                    d += (double)q[(size_t)i * ldq + h + c] * (double)k[(size_t)j * ldk + h + c];
                s[j] = d * scale;
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < n_keys; j++)
                sum += exp(s[j] - mx);
            for (int j = 0; j < n_keys; j++)
                out[((size_t)p * n_q + i) * n_keys + j] = (float)(exp(s[j] - mx) / sum);
        }
    free(s);
}
