/*
 * decode_sample.c — sampling at temperature > 0 for best-of decoding
 * (openai-whisper GreedyDecoder with temperature: Categorical(logits / T)).
 * The reference draws from PyTorch's generator; tolk draws from its own
 * seeded xorshift64* generator, so samples are reproducible for a seed but
 * not equal to the reference's. The search loop itself (best_of sequences
 * in one batch, ranked by MaximumLikelihoodRanker) is in decode_greedy.c.
 */
#include "decode.h"

#include <math.h>

uint64_t tolk_rng_seed(uint64_t seed) {
    /* splitmix64, so that small seeds give well-mixed states; never 0 */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z ? z : 0x2545F4914F6CDD1Dull;
}

double tolk_rng_uniform(uint64_t *state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    uint64_t r = x * 0x2545F4914F6CDD1Dull;
    return (double)(r >> 11) * (1.0 / 9007199254740992.0); /* 53 bits in [0, 1) */
}

int tolk_dec_sample(const float *logits, int n, float temperature, uint64_t *rng) {
    /* inverse-CDF draw from softmax(logits / temperature), in double */
    double mx = -INFINITY;
    int last_finite = -1;
    for (int i = 0; i < n; i++) {
        if (logits[i] == -INFINITY) continue;
        last_finite = i;
        double v = (double)logits[i] / (double)temperature;
        if (v > mx) mx = v;
    }
    if (last_finite < 0) return 0;
    double total = 0.0;
    for (int i = 0; i < n; i++)
        if (logits[i] != -INFINITY) total += exp((double)logits[i] / temperature - mx);
    double u = tolk_rng_uniform(rng) * total;
    double acc = 0.0;
    for (int i = 0; i < n; i++) {
        if (logits[i] == -INFINITY) continue;
        acc += exp((double)logits[i] / temperature - mx);
        if (u < acc) return i;
    }
    return last_finite;
}
