/* StochGRASP's output noise on the CPU, each step one loop over a [n, m] block (loaded with ctypes
 * by noise.py; torch operations without it):
 *
 * noise_add:  e[i, j] ~ N(0, 1),  out[i, j] += std[i, group[j]] * e[i, j],  e kept for the backward
 * group_dot:  per[i, c] = sum over j with group[j] = c of gy[i, j] * e[i, j]
 *
 * e from ../../_passes.h's Philox and Box-Muller under the draw's 64-bit key (per group of 64
 * columns of a row, whatever the threads); rows split over torch's OpenMP team. std and per are
 * [n, k]; group holds each column's group in 0..k-1.
 */
#include "../../_passes.h"

static CLONES __attribute__((noinline)) void noise_add_rows(float *out, const float *std, const int64_t *group,
                                                            int64_t m, int64_t k, int64_t row0, int64_t rows,
                                                            float *eps, uint64_t seed) {
    const int64_t groups = (m + GROUP - 1) / GROUP;
    float z[GROUP];
    for (int64_t i = row0; i < row0 + rows; i++) {
        const float *si = std + i * k;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t j0 = g * GROUP, len = m - j0 < GROUP ? m - j0 : GROUP;
            float *og = out + i * m + j0, *eg = eps + i * m + j0;
            const int64_t *gg = group + j0;
            philox_normals((uint64_t)i * (uint64_t)groups + (uint64_t)g, seed, z);
#pragma omp simd
            for (int64_t t = 0; t < len; t++) {
                eg[t] = z[t];
                og[t] += si[gg[t]] * z[t];
            }
        }
    }
}

void noise_add(float *out, const float *std, const int64_t *group, int64_t n, int64_t m, int64_t k, float *eps,
               uint64_t seed) {
    ON_TEAM(n, m, noise_add_rows(out, std, group, m, k, row0, count, eps, seed))
}

static CLONES __attribute__((noinline)) void group_dot_rows(const float *gy, const float *eps, const int64_t *group,
                                                            int64_t m, int64_t k, int64_t row0, int64_t rows,
                                                            float *per) {
    for (int64_t i = row0; i < row0 + rows; i++) {
        const float *gi = gy + i * m, *ei = eps + i * m;
        float *pi = per + i * k;
        for (int64_t c = 0; c < k; c++) pi[c] = 0.0f;
        for (int64_t j = 0; j < m; j++) pi[group[j]] += gi[j] * ei[j];
    }
}

void group_dot(const float *gy, const float *eps, const int64_t *group, int64_t n, int64_t m, int64_t k,
               float *per) {
    ON_TEAM(n, m, group_dot_rows(gy, eps, group, m, k, row0, count, per))
}
