/* The pieces imc-sim's compiled passes share: per-instruction-set clones, the OpenMP team that
 * splits rows, and standard normals from a counter-based generator.
 *
 * Gaussian z comes from Philox4x32-10 (Salmon et al., SC 2011), keyed by a 64-bit seed, and
 * Box-Muller: each group of 64 columns of a row has its own counters, so the noise of (i, j) does
 * not depend on how rows are split over threads. Loops over 16 lanes are written for the compiler
 * to vectorise (log and cos as plain polynomials).
 *
 * Rows are split over an OpenMP team. The libraries link libgomp.so.1, the soname of the OpenMP
 * runtime torch's CPU wheels load first, so the team is torch's own intra-op pool: its threads,
 * still spinning after torch's last parallel region, take the rows at once, and
 * omp_get_max_threads() follows torch.set_num_threads. Each pass has a row worker (compiled per
 * instruction set) and an exported wrapper that gives each thread of the team its block of rows.
 */
#ifndef IMC_SIM_PASSES_H
#define IMC_SIM_PASSES_H

#include <math.h>
#include <omp.h>
#include <stdint.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "arch=x86-64-v2", "default")))
#else
#define CLONES
#endif
#define LANES 16
#define GROUP (4 * LANES) /* normals per group of counters */
#define PARALLEL_WORK (1 << 15) /* elements from which a pass splits its rows over the team */

/* This thread's block of rows of n: [*row0, *row0 + *count), count possibly 0. */
static void thread_rows(int64_t n, int64_t *row0, int64_t *count) {
    const int64_t threads = omp_get_num_threads(), step = (n + threads - 1) / threads;
    const int64_t first = step * omp_get_thread_num();
    *row0 = first < n ? first : n;
    *count = n - *row0 < step ? n - *row0 : step;
}

/* Run STATEMENT (which reads row0 and count) on every thread's block of the n rows, in a team
 * where n rows of m elements are worth it, else on this thread alone. */
#define ON_TEAM(n, m, STATEMENT)                                        \
    const int64_t work = (n) * (m);                                     \
    _Pragma("omp parallel if (work >= PARALLEL_WORK)")                  \
    {                                                                   \
        int64_t row0, count;                                            \
        thread_rows((n), &row0, &count);                                \
        if (count > 0) STATEMENT;                                       \
    }

/* ln x for x in (0, 1]: x = m 2^e with m in [1, 2), ln m = 2 atanh(t), t = (m - 1) / (m + 1) in
 * [0, 1/3), by its series to t^9 (error below 6e-7). Plain arithmetic, so the loop vectorises. */
static inline __attribute__((always_inline)) float log_unit(float x) {
    union { float f; uint32_t i; } v = {x};
    const float e = (float)((int32_t)(v.i >> 23) - 127);
    v.i = (v.i & 0x007FFFFFu) | 0x3F800000u;
    const float t = (v.f - 1.0f) / (v.f + 1.0f), t2 = t * t;
    const float series =
        t * (2.0f + t2 * (2.0f / 3 + t2 * (2.0f / 5 + t2 * (2.0f / 7 + t2 * (2.0f / 9)))));
    return e * 0.69314718055994531f + series;
}

/* cos(2 pi u) for any u: with w = |u - rint(u)| - 1/4 in [-1/4, 1/4], cos(2 pi u) = -sin(2 pi w),
 * sin by its odd series to x^11 on [-pi/2, pi/2] (error below 6e-8). */
static inline __attribute__((always_inline)) float cos_turns(float u) {
    const float x = 6.28318530717958647692f * (fabsf(u - rintf(u)) - 0.25f), x2 = x * x;
    const float sin_x = x * (1.0f + x2 * (-1.0f / 6 + x2 * (1.0f / 120 + x2 * (-1.0f / 5040
                        + x2 * (1.0f / 362880 + x2 * (-1.0f / 39916800))))));
    return -sin_x;
}

/* 64 standard normals of counter group ``group`` under key ``seed`` into z. Philox's 32-bit words
 * are held in 64-bit lanes, so that each round's 32 x 32 -> 64-bit products are one vector
 * multiply per 8 lanes instead of a widening of every word (1.6x faster on AVX-512, the same
 * numbers). */
static CLONES __attribute__((noinline)) void philox_normals(uint64_t group, uint64_t seed, float *z) {
    const uint64_t low = 0xFFFFFFFFull;
    uint64_t c0[LANES], c1[LANES], c2[LANES], c3[LANES];
    uint64_t k0 = seed & low, k1 = seed >> 32;
#pragma omp simd
    for (int l = 0; l < LANES; l++) {
        uint64_t counter = group * LANES + (uint64_t)l;
        c0[l] = counter & low;
        c1[l] = counter >> 32;
        c2[l] = 0x243F6A88u; /* fixed words of the counter (digits of pi) */
        c3[l] = 0x85A308D3u;
    }
    for (int round = 0; round < 10; round++) {
#pragma omp simd
        for (int l = 0; l < LANES; l++) {
            uint64_t p0 = 0xD2511F53ull * (c0[l] & low);
            uint64_t p1 = 0xCD9E8D57ull * (c2[l] & low);
            uint64_t n0 = (p1 >> 32) ^ c1[l] ^ k0;
            uint64_t n2 = (p0 >> 32) ^ c3[l] ^ k1;
            c1[l] = p1 & low;
            c3[l] = p0 & low;
            c0[l] = n0;
            c2[l] = n2;
        }
        k0 = (k0 + 0x9E3779B9u) & low;
        k1 = (k1 + 0xBB67AE85u) & low;
    }
    const float scale = 1.0f / 16777216.0f;
#pragma omp simd
    for (int l = 0; l < LANES; l++) {
        float u1 = ((float)(int32_t)(c0[l] >> 8) + 0.5f) * scale; /* in (0, 1) */
        float u2 = (float)(int32_t)(c1[l] >> 8) * scale;
        float u3 = ((float)(int32_t)(c2[l] >> 8) + 0.5f) * scale;
        float u4 = (float)(int32_t)(c3[l] >> 8) * scale;
        float r1 = sqrtf(-2.0f * log_unit(u1)), r2 = sqrtf(-2.0f * log_unit(u3));
        z[l] = r1 * cos_turns(u2);
        z[LANES + l] = r1 * cos_turns(u2 - 0.25f); /* sin(2 pi u) */
        z[2 * LANES + l] = r2 * cos_turns(u4);
        z[3 * LANES + l] = r2 * cos_turns(u4 - 0.25f);
    }
}

#endif
