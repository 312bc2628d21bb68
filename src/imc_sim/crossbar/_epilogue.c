/* The simulator's elementwise passes, each fused into one loop (the noisy ones with their own
 * Gaussian generator).
 *
 * dac_codes: the DAC before a tile's product (noise management, quantisation, clipping).
 * periphery_epilogue: the tile periphery after the product (output noise, ADC, digital scales).
 * device_draw: device-aware training's draw of drifted weights from the quantile tables.
 * code_squares: the squared DAC codes, as two uint8 limbs, for the per-read noise's variance.
 *
 * Gaussian z comes from a counter-based generator, Philox4x32-10 (Salmon et al., SC 2011), keyed
 * by a 64-bit seed drawn from torch's generator per call, and Box-Muller: each group of 64 columns
 * of a row has its own counters, so the noise of (i, j) does not depend on how rows are split over
 * threads. Loops over 16 lanes are written for the compiler to vectorise (log and cos as plain
 * polynomials).
 *
 * Rows are split over an OpenMP team. The library links libgomp.so.1, the soname of the OpenMP
 * runtime torch's CPU wheels load first, so the team is torch's own intra-op pool: its threads,
 * still spinning after torch's last parallel region, take the rows at once, and
 * omp_get_max_threads() follows torch.set_num_threads. Each pass has a row worker (compiled per
 * instruction set) and an exported wrapper that gives each thread of the team its block of rows.
 * Plain C, no Python API: built at install (optional) and loaded with ctypes by
 * imc_sim/analog/epilogue.py, which falls back to torch operations without it.
 */
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

/* rintf (round half to even) in plain arithmetic, so that loops vectorise without SSE4.1 or
 * fast-math: below 2^23, adding 2^23 leaves a float whose spacing is 1, rounded half to even;
 * from 2^23 on every float is a whole number. */
static inline __attribute__((always_inline)) float round_even(float v) {
    const float a = fabsf(v), r = a < 8388608.0f ? (a + 8388608.0f) - 8388608.0f : a;
    return copysignf(r, v);
}

static CLONES __attribute__((noinline)) void philox_normals(uint64_t group, uint64_t seed, float *z) {
    uint32_t c0[LANES], c1[LANES], c2[LANES], c3[LANES];
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma omp simd
    for (int l = 0; l < LANES; l++) {
        uint64_t counter = group * LANES + (uint64_t)l;
        c0[l] = (uint32_t)counter;
        c1[l] = (uint32_t)(counter >> 32);
        c2[l] = 0x243F6A88u; /* fixed words of the counter (digits of pi) */
        c3[l] = 0x85A308D3u;
    }
    for (int round = 0; round < 10; round++) {
#pragma omp simd
        for (int l = 0; l < LANES; l++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0[l];
            uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[l];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
            c1[l] = (uint32_t)p1;
            c3[l] = (uint32_t)p0;
            c0[l] = n0;
            c2[l] = n2;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    const float scale = 1.0f / 16777216.0f;
#pragma omp simd
    for (int l = 0; l < LANES; l++) {
        float u1 = ((float)(c0[l] >> 8) + 0.5f) * scale; /* in (0, 1) */
        float u2 = (float)(c1[l] >> 8) * scale;
        float u3 = ((float)(c2[l] >> 8) + 0.5f) * scale;
        float u4 = (float)(c3[l] >> 8) * scale;
        float r1 = sqrtf(-2.0f * log_unit(u1)), r2 = sqrtf(-2.0f * log_unit(u3));
        z[l] = r1 * cos_turns(u2);
        z[LANES + l] = r1 * cos_turns(u2 - 0.25f); /* sin(2 pi u) */
        z[2 * LANES + l] = r2 * cos_turns(u4);
        z[3 * LANES + l] = r2 * cos_turns(u4 - 0.25f);
    }
}

/* The n rows of a row tile's product y [n, m]: for every element (i, j)
 *     v = y[i, j] * y_scale + sd * z[i, j]   (in ADC steps) z ~ N(0, 1); sd a scalar, or per
 *                                            element sd = sqrt(var[i, j] + var_add) * sd_scale
 *     v = clamp(round(v), -bound, bound)     (round: half to even; skipped without an ADC)
 *     out[i, j] = base[i, j] + v * row_scale[i] * col_factor[j]
 * with base = out (accumulate: the row tiles before this one) or the bias (or 0). var (or NULL
 * for sd_scalar), row_scale, bias may be NULL; out may be y itself. */
static CLONES __attribute__((noinline)) void epilogue_rows(
        const float *y, float y_scale, int64_t m, int64_t row0, int64_t rows, const float *var, float var_add,
        float sd_scale, float sd_scalar, int quantize, float bound, const float *row_scale,
        const float *col_factor, const float *bias, float *out, int accumulate, uint64_t seed) {
    const int64_t groups = (m + GROUP - 1) / GROUP;
    const int noisy = var != 0 || sd_scalar != 0.0f;
    float z[GROUP], v[GROUP];
    /* one simple loop per step, each branch-free, so that every one vectorises */
    for (int64_t i = row0; i < row0 + rows; i++) {
        const float rs = row_scale ? row_scale[i] : 1.0f;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t j0 = g * GROUP, len = m - j0 < GROUP ? m - j0 : GROUP;
            const float *yg = y + i * m + j0, *cg = col_factor + j0;
            float *og = out + i * m + j0;
#pragma omp simd
            for (int64_t t = 0; t < len; t++) v[t] = yg[t] * y_scale;
            if (noisy) {
                philox_normals((uint64_t)i * (uint64_t)groups + (uint64_t)g, seed, z);
                if (var) {
                    const float *vg = var + i * m + j0;
#pragma omp simd
                    for (int64_t t = 0; t < len; t++) v[t] += sqrtf(vg[t] + var_add) * sd_scale * z[t];
                } else {
#pragma omp simd
                    for (int64_t t = 0; t < len; t++) v[t] += sd_scalar * z[t];
                }
            }
            if (quantize) {
#pragma omp simd
                for (int64_t t = 0; t < len; t++) {
                    float c = v[t] < -bound ? -bound : v[t]; /* clamp first: bound is a whole number */
                    c = c > bound ? bound : c;
                    v[t] = round_even(c);
                }
            }
#pragma omp simd
            for (int64_t t = 0; t < len; t++) {
                float c = v[t] < -bound ? -bound : v[t]; /* fminf/fmaxf do not vectorise without -ffinite-math-only */
                v[t] = (c > bound ? bound : c) * rs * cg[t];
            }
            if (accumulate) {
#pragma omp simd
                for (int64_t t = 0; t < len; t++) og[t] += v[t];
            } else if (bias) {
                const float *bg = bias + j0;
#pragma omp simd
                for (int64_t t = 0; t < len; t++) og[t] = bg[t] + v[t];
            } else {
#pragma omp simd
                for (int64_t t = 0; t < len; t++) og[t] = v[t];
            }
        }
    }
}

void periphery_epilogue(const float *y, float y_scale, int64_t n, int64_t m, const float *var, float var_add,
                        float sd_scale, float sd_scalar, int quantize, float bound, const float *row_scale,
                        const float *col_factor, const float *bias, float *out, int accumulate, uint64_t seed) {
    ON_TEAM(n, m, epilogue_rows(y, y_scale, m, row0, count, var, var_add, sd_scale, sd_scalar, quantize, bound,
                                row_scale, col_factor, bias, out, accumulate, seed))
}

/* The n rows of targets u[i, j] = x[i, j] * row_inv[i] (x itself where row_inv is NULL), x [n, m]:
 * for every element the inverse-CDF draw
 *     w[i, j] = Q(u[i, j], z[i, j]),   z ~ N(0, 1)
 * with Q the quantile table [grid, levels] (row r: target -1 + 2 r / (grid - 1); column l: the
 * quantile at level Phi(z_first + l z_step)) interpolated linearly in u, which is clamped to
 * [-1, 1], and in z, which is clamped to the table's columns. Also the row
 * sums of |u| and |w| (drift compensation), into abs_u[i] and abs_w[i]. With read, one read's
 * weight noise is then added, w += sqrt(r0 + r1 |w| + r2 w^2) z' with z' ~ N(0, 1) from a second
 * key (the row sums stay those of the drifted state). z and z' as in periphery_epilogue (Philox,
 * counters per group of 64 columns of a row), so the draw does not depend on the thread split. */
static CLONES __attribute__((noinline)) void draw_rows(
        const float *x, const float *row_inv, int64_t m, int64_t row0, int64_t rows, const float *table,
        int64_t grid, int64_t levels, float z_first, float inv_z_step, int read, float r0, float r1, float r2,
        float *w, float *abs_u, float *abs_w, uint64_t seed) {
    const int64_t groups = (m + GROUP - 1) / GROUP;
    const float half = 0.5f * (float)(grid - 1), top = (float)(levels - 1);
    const int32_t last_row = (int32_t)grid - 2, last_col = (int32_t)levels - 2, cols = (int32_t)levels;
    const uint64_t read_seed = seed ^ 0x5851F42D4C957F2DULL; /* the second key, of z' */
    float z[GROUP], zr[GROUP];
    for (int64_t i = row0; i < row0 + rows; i++) {
        const float ri = row_inv ? row_inv[i] : 1.0f;
        float sum_u = 0.0f, sum_w = 0.0f;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t j0 = g * GROUP, len = m - j0 < GROUP ? m - j0 : GROUP;
            const float *xg = x + i * m + j0;
            float *wg = w + i * m + j0;
            philox_normals((uint64_t)i * (uint64_t)groups + (uint64_t)g, seed, z);
#pragma omp simd reduction(+ : sum_u, sum_w)
            for (int64_t t = 0; t < len; t++) {
                const float ut = xg[t] * ri;
                /* clamps as comparisons (fminf/fmaxf vectorise slowly without -ffinite-math-only),
                 * written so that a NaN lands on the lower bound, inside the table */
                float c = ut > -1.0f ? ut : -1.0f;
                c = c < 1.0f ? c : 1.0f;
                const float pos = (c + 1.0f) * half;
                int32_t k = (int32_t)pos; /* 32-bit indices (a table is far below 2^31 entries) */
                k = k < last_row ? k : last_row;
                const float f = pos - (float)k;
                float pz = (z[t] - z_first) * inv_z_step;
                pz = pz > 0.0f ? pz : 0.0f;
                pz = pz < top ? pz : top;
                int32_t l = (int32_t)pz;
                l = l < last_col ? l : last_col;
                const float fz = pz - (float)l;
                const int32_t at = k * cols + l;
                const float lower = table[at] + fz * (table[at + 1] - table[at]);
                const float upper = table[at + cols] + fz * (table[at + cols + 1] - table[at + cols]);
                const float v = lower + f * (upper - lower);
                wg[t] = v;
                sum_u += fabsf(ut);
                sum_w += fabsf(v);
            }
            if (read) {
                philox_normals((uint64_t)i * (uint64_t)groups + (uint64_t)g, read_seed, zr);
#pragma omp simd
                for (int64_t t = 0; t < len; t++) {
                    const float v = wg[t], a = fabsf(v), var = r0 + a * (r1 + a * r2);
                    wg[t] = v + sqrtf(var > 0.0f ? var : 0.0f) * zr[t];
                }
            }
        }
        abs_u[i] = sum_u;
        abs_w[i] = sum_w;
    }
}

void device_draw(const float *x, const float *row_inv, int64_t n, int64_t m, const float *table, int64_t grid,
                 int64_t levels, float z_first, float inv_z_step, int read, float r0, float r1, float r2,
                 float *w, float *abs_u, float *abs_w, uint64_t seed) {
    ON_TEAM(n, m, draw_rows(x, row_inv, m, row0, count, table, grid, levels, z_first, inv_z_step, read, r0, r1,
                            r2, w, abs_u, abs_w, seed))
}

/* The n rows of inputs x [n, tiles * rows], each row cut into its row tiles:
 *     s = max |x| over the row tile (noise management; 1 where that is 0; s = 1 without it)
 *     c = x * (inv_d_in / s), rounded half to even (quantize), clamped to +-bound (clip)
 * c goes to codes_f [n, tiles, rows] (x's layout) or, as uint8 c + 128, to codes_u8
 * [tiles, n, rows] (one contiguous block per row tile, the int8 product's input); s to scale
 * [n, tiles] when managed. */
static CLONES __attribute__((noinline)) void dac_rows(
        const float *x, int64_t n, int64_t tiles, int64_t rows, int64_t row0, int64_t count, float inv_d_in,
        int managed, int quantize, int clip, float bound, float *codes_f, uint8_t *codes_u8, float *scale) {
    for (int64_t i = row0; i < row0 + count; i++) {
        for (int64_t r = 0; r < tiles; r++) {
            const float *xr = x + (i * tiles + r) * rows;
            float f = inv_d_in;
            if (managed) {
                float s = 0.0f;
#pragma omp simd reduction(max : s)
                for (int64_t t = 0; t < rows; t++) {
                    const float a = fabsf(xr[t]);
                    s = a > s ? a : s; /* fmaxf does not vectorise without -ffinite-math-only */
                }
                s = s > 0.0f ? s : 1.0f;
                scale[i * tiles + r] = s;
                f = inv_d_in / s;
            }
            float *cf = codes_f ? codes_f + (i * tiles + r) * rows : 0;
            uint8_t *cu = codes_u8 ? codes_u8 + (r * n + i) * rows : 0;
#pragma omp simd
            for (int64_t t = 0; t < rows; t++) {
                float v = xr[t] * f;
                if (clip) { /* clamp first: bound is a whole number where codes are rounded */
                    v = v < -bound ? -bound : v;
                    v = v > bound ? bound : v;
                }
                if (quantize) v = round_even(v);
                if (cu) cu[t] = (uint8_t)(int32_t)(v + 128.0f);
                else cf[t] = v;
            }
        }
    }
}

void dac_codes(const float *x, int64_t n, int64_t tiles, int64_t rows, float inv_d_in, int managed, int quantize,
               int clip, float bound, float *codes_f, uint8_t *codes_u8, float *scale) {
    ON_TEAM(n, tiles * rows, dac_rows(x, n, tiles, rows, row0, count, inv_d_in, managed, quantize, clip, bound,
                                      codes_f, codes_u8, scale))
}

/* Squares of n DAC codes given as uint8 c + 128: c^2 = 128 hi + lo exactly (c^2 <= 127^2 = 16129,
 * hi <= 126, lo < 128), the uint8 inputs of the int8 product that gives sum_j c_j^2 V_j. */
static CLONES __attribute__((noinline)) void squares_span(const uint8_t *codes, int64_t n, uint8_t *hi,
                                                          uint8_t *lo) {
#pragma omp simd
    for (int64_t t = 0; t < n; t++) {
        const int32_t c = (int32_t)codes[t] - 128, sq = c * c;
        hi[t] = (uint8_t)(sq >> 7);
        lo[t] = (uint8_t)(sq & 127);
    }
}

void code_squares(const uint8_t *codes, int64_t n, uint8_t *hi, uint8_t *lo) {
    ON_TEAM(n, 1, squares_span(codes + row0, count, hi + row0, lo + row0))
}
