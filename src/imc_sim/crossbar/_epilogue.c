/* The simulator's elementwise passes, each fused into one loop (the noisy ones with their own
 * Gaussian generator).
 *
 * dac_codes: the DAC before a tile's product (noise management, quantisation, clipping).
 * periphery_epilogue: the tile periphery after the product (output noise, ADC, digital scales).
 * device_draw: device-aware training's draw of drifted weights from the quantile tables.
 * dithered_squares: the squared DAC codes, one uint8 each in steps of their row's own scale (an
 * unbiased dither), for the per-read noise's variance.
 * tile_normals: the standard normals of a chip's devices, one key per tile (programming, drift).
 *
 * Gaussian z and the split of rows over torch's OpenMP team come from ../_passes.h (keys drawn
 * from torch's generator per call).
 * Plain C, no Python API: built at install (optional) and loaded with ctypes by
 * imc_sim/crossbar/epilogue.py, which falls back to torch operations without it.
 */
#include "../_passes.h"

/* rintf (round half to even) in plain arithmetic, so that loops vectorise without SSE4.1 or
 * fast-math: below 2^23, adding 2^23 leaves a float whose spacing is 1, rounded half to even;
 * from 2^23 on every float is a whole number. */
static inline __attribute__((always_inline)) float round_even(float v) {
    const float a = fabsf(v), r = a < 8388608.0f ? (a + 8388608.0f) - 8388608.0f : a;
    return copysignf(r, v);
}

/* The n rows of a row tile's product y [n, m]: for every element (i, j)
 *     y' = y[i, j] - alpha w[i, j] F(a[i, j])  (IR drop, where w is not NULL: F(a) = s c(k a),
 *                                            c(x) = x (0.5 - 0.2 x + 0.05 x^2), as ir_drop.py)
 *     v = y' * y_scale + sd * z[i, j]        (in ADC steps) z ~ N(0, 1); sd a scalar, or per
 *                                            element sd = sqrt(var[i, j] * var_row[i] + var_add)
 *                                            * sd_scale (var_row NULL: 1)
 *     v = clamp(round(v), -bound, bound)     (round: half to even; skipped without an ADC)
 *     out[i, j] = base[i, j] + v * row_scale[i] * col_factor[j]
 * with base = out (accumulate: the row tiles before this one) or the bias (or 0). var (or NULL
 * for sd_scalar), var_row, row_scale, bias may be NULL; out may be y itself. */
static CLONES __attribute__((noinline)) void epilogue_rows(
        const float *y, float y_scale, int64_t m, int64_t row0, int64_t rows, const float *var,
        const float *var_row, float var_add, float sd_scale, float sd_scalar, int quantize, float bound,
        const float *row_scale, const float *col_factor, const float *bias, float *out, int accumulate,
        uint64_t seed, const float *drop_w, const float *drop_a, float drop_k, float drop_s, float drop_alpha) {
    const int64_t groups = (m + GROUP - 1) / GROUP;
    const int noisy = var != 0 || sd_scalar != 0.0f;
    float z[GROUP], v[GROUP];
    /* one simple loop per step, each branch-free, so that every one vectorises */
    for (int64_t i = row0; i < row0 + rows; i++) {
        const float rs = row_scale ? row_scale[i] : 1.0f, vr = var_row ? var_row[i] : 1.0f;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t j0 = g * GROUP, len = m - j0 < GROUP ? m - j0 : GROUP;
            const float *yg = y + i * m + j0, *cg = col_factor + j0;
            float *og = out + i * m + j0;
            if (drop_w) {
                const float *wg = drop_w + i * m + j0, *ag = drop_a + i * m + j0;
#pragma omp simd
                for (int64_t t = 0; t < len; t++) {
                    const float a = ag[t] * drop_k, f = ((a * 0.05f - 0.2f) * a + 0.5f) * a * drop_s;
                    v[t] = (yg[t] - drop_alpha * (wg[t] * f)) * y_scale;
                }
            } else {
#pragma omp simd
                for (int64_t t = 0; t < len; t++) v[t] = yg[t] * y_scale;
            }
            if (noisy) {
                philox_normals((uint64_t)i * (uint64_t)groups + (uint64_t)g, seed, z);
                if (var) {
                    const float *vg = var + i * m + j0;
#pragma omp simd
                    for (int64_t t = 0; t < len; t++) v[t] += sqrtf(vg[t] * vr + var_add) * sd_scale * z[t];
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

void periphery_epilogue(const float *y, float y_scale, int64_t n, int64_t m, const float *var,
                        const float *var_row, float var_add, float sd_scale, float sd_scalar, int quantize,
                        float bound, const float *row_scale, const float *col_factor, const float *bias,
                        float *out, int accumulate, uint64_t seed, const float *drop_w, const float *drop_a,
                        float drop_k, float drop_s, float drop_alpha) {
    ON_TEAM(n, m, epilogue_rows(y, y_scale, m, row0, count, var, var_row, var_add, sd_scale, sd_scalar, quantize,
                                bound, row_scale, col_factor, bias, out, accumulate, seed, drop_w, drop_a, drop_k,
                                drop_s, drop_alpha))
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

/* The n rows of inputs x [n, width], width <= tiles * rows, each row cut into its row tiles
 * (the last ones padded with zero inputs up to tiles * rows):
 *     s = max |x| over the row tile (noise management; 1 where that is 0; s = 1 without it)
 *     c = x * (f / s), rounded half to even (quantize), clamped to +-bound (clip); 0 on padding
 * with f = inv_d_in, or tile_factor[r] for row tile r where given (static input ranges:
 * inv_d_in / range).
 * c goes to codes_f [n, tiles, rows] or, as uint8 c + 128, to codes_u8 [tiles, n, rows] (one
 * contiguous block per row tile, the int8 product's input); s to scale [n, tiles] when managed. */
static CLONES __attribute__((noinline)) void dac_rows(
        const float *x, int64_t n, int64_t width, int64_t tiles, int64_t rows, int64_t row0, int64_t count,
        float inv_d_in, const float *tile_factor, int managed, int quantize, int clip, float bound,
        float *codes_f, uint8_t *codes_u8, float *scale) {
    for (int64_t i = row0; i < row0 + count; i++) {
        for (int64_t r = 0; r < tiles; r++) {
            const float *xr = x + i * width + r * rows;
            const int64_t left = width - r * rows, real = left < 0 ? 0 : (left < rows ? left : rows);
            float f = tile_factor ? tile_factor[r] : inv_d_in;
            if (managed) {
                float s = 0.0f;
#pragma omp simd reduction(max : s)
                for (int64_t t = 0; t < real; t++) {
                    const float a = fabsf(xr[t]);
                    s = a > s ? a : s; /* fmaxf does not vectorise without -ffinite-math-only */
                }
                s = s > 0.0f ? s : 1.0f;
                scale[i * tiles + r] = s;
                f = f / s;
            }
            float *cf = codes_f ? codes_f + (i * tiles + r) * rows : 0;
            uint8_t *cu = codes_u8 ? codes_u8 + (r * n + i) * rows : 0;
#pragma omp simd
            for (int64_t t = 0; t < real; t++) {
                float v = xr[t] * f;
                if (clip) { /* clamp first: bound is a whole number where codes are rounded */
                    v = v < -bound ? -bound : v;
                    v = v > bound ? bound : v;
                }
                if (quantize) v = round_even(v);
                if (cu) cu[t] = (uint8_t)(int32_t)(v + 128.0f);
                else cf[t] = v;
            }
            for (int64_t t = real; t < rows; t++) {
                if (cu) cu[t] = 128;
                else cf[t] = 0.0f;
            }
        }
    }
}

void dac_codes(const float *x, int64_t n, int64_t width, int64_t tiles, int64_t rows, float inv_d_in,
               const float *tile_factor, int managed, int quantize, int clip, float bound, float *codes_f,
               uint8_t *codes_u8, float *scale) {
    ON_TEAM(n, tiles * rows, dac_rows(x, n, width, tiles, rows, row0, count, inv_d_in, tile_factor, managed,
                                      quantize, clip, bound, codes_f, codes_u8, scale))
}

/* The dither of code j of row i, d = ((i A + j B) mod 2^32) / 2^32 to 24 bits, in [0, 1): the
 * two-dimensional R2 low-discrepancy sequence (A, B: 2^32 / g and 2^32 / g^2, g the plastic number). */
#define DITHER_A 3242174889u
#define DITHER_B 2447445414u

/* The squares of rows row0 .. row0 + rows - 1 of DAC codes [n, cols] (uint8 c + 128) as one uint8
 * each in steps of s_i = max_j c_ij^2 / 255 (step[i]; 0 for a row of zeros), rounded with a dither:
 *     q_ij = min(floor(c_ij^2 / s_i + d_ij), 255),   E over the dither [q_ij s_i] = c_ij^2
 * so that s_i sum_j q_ij V_j is sum_j c_ij^2 V_j up to a zero-mean error (zero codes stay 0). */
static CLONES __attribute__((noinline)) void dithered_rows(const uint8_t *codes, int64_t cols, int64_t row0,
                                                           int64_t rows, uint8_t *q, float *step) {
    for (int64_t i = row0; i < row0 + rows; i++) {
        const uint8_t *ci = codes + i * cols;
        uint8_t *qi = q + i * cols;
        int32_t m = 0;
#pragma omp simd reduction(max : m)
        for (int64_t j = 0; j < cols; j++) {
            const int32_t c = (int32_t)ci[j] - 128, sq = c * c;
            m = sq > m ? sq : m;
        }
        const float inv = m > 0 ? 255.0f / (float)m : 0.0f;
        const uint32_t base = (uint32_t)i * DITHER_A;
        step[i] = (float)m / 255.0f;
#pragma omp simd
        for (int64_t j = 0; j < cols; j++) {
            const int32_t c = (int32_t)ci[j] - 128;
            const float d = (float)((base + (uint32_t)j * DITHER_B) >> 8) * 0x1p-24f;
            const int32_t k = (int32_t)((float)(c * c) * inv + d); /* floor: the sum is >= 0 */
            qi[j] = (uint8_t)(k > 255 ? 255 : k);
        }
    }
}

void dithered_squares(const uint8_t *codes, int64_t n, int64_t cols, uint8_t *q, float *step) {
    ON_TEAM(n, cols, dithered_rows(codes, cols, row0, count, q, step))
}

/* Counter groups first .. first + count - 1 of the tiles' normals (groups_per_tile per tile):
 * element k of tile t is element k % 64 of tile t's counter group k / 64 under key seeds[t]. */
static CLONES __attribute__((noinline)) void normal_groups(float *out, int64_t first, int64_t count,
                                                           int64_t groups_per_tile, int64_t per_tile,
                                                           const int64_t *seeds) {
    float z[GROUP];
    for (int64_t q = first; q < first + count; q++) {
        const int64_t t = q / groups_per_tile, g = q % groups_per_tile, start = g * GROUP;
        const int64_t len = per_tile - start < GROUP ? per_tile - start : GROUP;
        float *dst = out + t * per_tile + start;
        philox_normals((uint64_t)g, (uint64_t)seeds[t], len == GROUP ? dst : z);
        for (int64_t k = 0; len < GROUP && k < len; k++) dst[k] = z[k];
    }
}

/* out [tiles, per_tile]: tile t's standard normals under key seeds[t] (counter-based, so the numbers
 * depend on neither the split over threads nor the tiles filled beside it). */
void tile_normals(float *out, int64_t tiles, int64_t per_tile, const int64_t *seeds) {
    const int64_t groups = (per_tile + GROUP - 1) / GROUP;
    ON_TEAM(tiles * groups, GROUP, normal_groups(out, row0, count, groups, per_tile, seeds))
}

/* e^x in plain float arithmetic: x = k ln 2 + r (Cody-Waite, |r| <= ln 2 / 2), e^r by its series to
 * r^7 (relative error below 2e-7), 2^k through the exponent bits; x clamped to [-87, 88]. */
static inline __attribute__((always_inline)) float exp_series(float x) {
    x = x < 88.0f ? x : 88.0f;
    x = x > -87.0f ? x : -87.0f;
    const float k = round_even(x * 1.44269504088896341f);
    const float r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
    const float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
                    + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    union { uint32_t i; float f; } two_k = {(uint32_t)((int32_t)k + 127) << 23};
    return p * two_k.f;
}

/* The PCM law (devices/families/pcm.py) for the devices of a tile's weights, fused: per device the
 * target conductance of its pair side, the law, stuck devices pinned, the devices of a weight
 * averaged and read back as a weight (crossbar/conductance.py), padding and dead columns zeroed.
 * params: [g_max, g_min, prog_scale, coeff_scale, drift_scale, log_time, read_factor, n_coeffs,
 *          coeffs...]; log_time = ln((t + t0) / t0) (0: no drift), read_factor = the 1/f read
 * noise's scale at t. lines: NULL (aihwkit's log fit of nu) or the drift table: g [points], then
 * the mean's intercepts and slopes and the std's intercepts and slopes per segment [points - 1]. */
typedef struct {
    int64_t devices, cols, rows, points;
    const float *params, *table;
} PcmLaw;

static inline __attribute__((always_inline)) float pair_side(float u, float ratio, int side, float g_max,
                                                            float g_min) {
    const float scaled = side ? -(u * ratio) : u * ratio;
    float c = scaled > 0.0f ? scaled : 0.0f;
    c = c < g_max ? c : g_max;
    return c + g_min;
}

/* z[t] = normal k0 + t of a tile's Philox stream (element k of counter group k / 64), t < len <= 64 */
static inline __attribute__((always_inline)) void normals_at(uint64_t seed, int64_t k0, int64_t len, float *z) {
    float a[GROUP], b[GROUP];
    const int64_t off = k0 % GROUP;
    if (off == 0) {
        philox_normals((uint64_t)(k0 / GROUP), seed, z);
        return;
    }
    philox_normals((uint64_t)(k0 / GROUP), seed, a);
    if (off + len > GROUP) philox_normals((uint64_t)(k0 / GROUP + 1), seed, b);
    for (int64_t t = 0; t < len; t++) z[t] = off + t < GROUP ? a[off + t] : b[off + t - GROUP];
}

/* nu's mean and std at target conductances gt[0..len): the drift table's lines (segment = number of
 * inner points <= g, g clamped to the table's span) or aihwkit's log fit. */
static inline __attribute__((always_inline)) void nu_moments(const PcmLaw *law, const float *gt, int64_t len,
                                                             float g_max, float *mean, float *std) {
    if (law->table) {
        const float *tg = law->table, *lines = law->table + law->points;
        const int64_t segs = law->points - 1;
        int32_t seg[GROUP];
        for (int64_t t = 0; t < len; t++) seg[t] = 0;
        for (int64_t k = 1; k < segs; k++) {
            const float gk = tg[k];
#pragma omp simd
            for (int64_t t = 0; t < len; t++) seg[t] += gt[t] >= gk;
        }
        const float lo = tg[0], hi = tg[segs];
#pragma omp simd
        for (int64_t t = 0; t < len; t++) {
            float gc = gt[t] > lo ? gt[t] : lo;
            gc = gc < hi ? gc : hi;
            mean[t] = lines[seg[t]] + lines[segs + seg[t]] * gc;
            std[t] = lines[2 * segs + seg[t]] + lines[3 * segs + seg[t]] * gc;
        }
        return;
    }
#pragma omp simd
    for (int64_t t = 0; t < len; t++) {
        const float ax = fabsf(gt[t] / g_max), lx = log_unit(ax > 1e-7f ? ax : 1e-7f);
        float m = -0.0155f * lx + 0.0244f, s = -0.0125f * lx - 0.0059f;
        m = m > 0.049f ? m : 0.049f;
        s = s > 0.008f ? s : 0.008f;
        mean[t] = m < 0.1f ? m : 0.1f;
        std[t] = s < 0.045f ? s : 0.045f;
    }
}

/* One chunk of a tile, weights j0 .. j0 + len - 1 (ut: their targets, pair ratio rt): programming
 * (up NULL) or drift of the programmed weights up (pair ratio rp), into o. */
static inline __attribute__((always_inline)) void pcm_chunk(
        const PcmLaw *lp, int64_t tile, int64_t j0, int64_t len, const float *ut, float rt, const float *up,
        float rp, uint64_t seed_a, const int64_t *seed_b, const int8_t *stuck, const float *live, float *o) {
    const PcmLaw law = *lp;
    const float *p = law.params;
    const float g_max = p[0], g_min = p[1], prog_scale = p[2], coeff_scale = p[3], drift_scale = p[4];
    const float log_time = p[5], read_factor = p[6];
    const int n_coeffs = (int)p[7];
    const float *coeffs = p + 8;
    const int64_t size = law.cols * law.rows, sides = 2 * law.devices;
    const int drift = up != 0;
    const float r_out = drift ? rp : rt; /* the pair ratio the weights are read back with */
    float za[GROUP], zb[GROUP], gt[GROUP], gp[GROUP], g[GROUP], a[GROUP], b[GROUP], q[GROUP];
    float sum_pos[GROUP], sum_neg[GROUP];
        for (int side = 0; side < 2; side++) {
        /* what the devices of this side of a pair share: the target, and the law's parameters at it */
#pragma omp simd
        for (int64_t t = 0; t < len; t++) gt[t] = pair_side(ut[t], rt, side, g_max, g_min);
        if (!drift) { /* a = sigma(gt / g_max) coeff_scale, the programming noise's std */
#pragma omp simd
            for (int64_t t = 0; t < len; t++) {
                a[t] = coeffs[0]; /* the polynomial */
                b[t] = 1.0f;      /* the power of x */
            }
            for (int k = 1; k < n_coeffs; k++) {
                const float ck = coeffs[k];
#pragma omp simd
                for (int64_t t = 0; t < len; t++) {
                    b[t] = b[t] * (gt[t] / g_max);
                    a[t] = a[t] + ck * b[t];
                }
            }
#pragma omp simd
            for (int64_t t = 0; t < len; t++) a[t] = a[t] * coeff_scale;
        } else { /* a, b: nu's mean and std; gp: the re-converted programmed conductance; q its
                  * 1/f read noise's relative std at t */
            nu_moments(&law, gt, len, g_max, a, b);
#pragma omp simd
            for (int64_t t = 0; t < len; t++) {
                gp[t] = pair_side(up[t], rp, side, g_max, g_min);
                float xp = exp_series(0.65f * log_unit(fabsf(gp[t]) / g_max)); /* gp <= g_max; 0 gives about -88 */
                xp = xp > 1e-3f ? xp : 1e-3f;
                const float qn = 0.0088f / xp;
                q[t] = (qn < 0.2f ? qn : 0.2f) * read_factor;
            }
        }
        float *sum = side ? sum_neg : sum_pos;
        for (int64_t t = 0; t < len; t++) sum[t] = 0.0f;
        for (int64_t d = 0; d < law.devices; d++) {
            const int64_t ds = 2 * d + side, k0 = ds * size + j0;
            normals_at(seed_a, k0, len, za);
            if (!drift) {
#pragma omp simd
                for (int64_t t = 0; t < len; t++) g[t] = gt[t] + prog_scale * a[t] * za[t];
            } else {
                if (seed_b) normals_at((uint64_t)*seed_b, k0, len, zb);
                else for (int64_t t = 0; t < len; t++) zb[t] = 0.0f;
#pragma omp simd
                for (int64_t t = 0; t < len; t++) {
                    const float nu = fabsf(a[t] + b[t] * za[t]) * drift_scale;
                    const float gd = log_time > 0.0f ? gp[t] * exp_series(-nu * log_time) : gp[t];
                    g[t] = gd + fabsf(gd) * q[t] * zb[t];
                }
            }
#pragma omp simd
            for (int64_t t = 0; t < len; t++) g[t] = g[t] > 0.0f ? g[t] : 0.0f;
            if (stuck) {
                const int8_t *st = stuck + (tile * sides + ds) * size + j0;
#pragma omp simd
                for (int64_t t = 0; t < len; t++) g[t] = st[t] == 1 ? g_min : (st[t] == 2 ? g_max : g[t]);
            }
#pragma omp simd
            for (int64_t t = 0; t < len; t++) sum[t] += g[t];
        }
    }
    const float inv = 1.0f / (float)law.devices;
#pragma omp simd
    for (int64_t t = 0; t < len; t++) {
        const float w = ((sum_pos[t] * inv - g_min) - (sum_neg[t] * inv - g_min)) / r_out;
        o[t] = live ? w * live[tile * size + j0 + t] : w;
    }
}

/* Chunks first .. first + count - 1 of the tiles (64 weights each): programming (ratio_prog NULL)
 * or drift, whose programmed weights are programmed again chunk by chunk (seeds_prog; their pair
 * ratio per tile ratio_prog) rather than read from memory. */
static CLONES __attribute__((noinline)) void pcm_chunks(
        PcmLaw law, int64_t first, int64_t count, const float *u_target, const float *ratio_target,
        const int64_t *seeds_prog, const float *ratio_prog, const int64_t *seeds_coef, const int64_t *seeds_read,
        const int8_t *stuck, const float *live, float *out) {
    const int64_t size = law.cols * law.rows, chunks = (size + GROUP - 1) / GROUP;
    float programmed[GROUP];
    for (int64_t c = first; c < first + count; c++) {
        const int64_t tile = c / chunks, j0 = (c % chunks) * GROUP;
        const int64_t len = size - j0 < GROUP ? size - j0 : GROUP;
        const float *ut = u_target + tile * size + j0;
        float *o = out + tile * size + j0;
        if (!ratio_prog) {
            pcm_chunk(&law, tile, j0, len, ut, ratio_target[tile], 0, 0.0f, (uint64_t)seeds_prog[tile], 0, stuck,
                      live, o);
            continue;
        }
        pcm_chunk(&law, tile, j0, len, ut, ratio_target[tile], 0, 0.0f, (uint64_t)seeds_prog[tile], 0, stuck,
                  live, programmed);
        pcm_chunk(&law, tile, j0, len, ut, ratio_target[tile], programmed, ratio_prog[tile],
                  (uint64_t)seeds_coef[tile], seeds_read ? seeds_read + tile : 0, stuck, live, o);
    }
}

/* out [tiles, cols * rows]: the weights the PCM devices of ``tiles`` tiles hold after programming
 * the targets u_target (pair ratios ratio_target; normals under seeds_prog) or, given ratio_prog
 * (the programmed weights' pair ratio per tile), after drift: the programmed weights programmed again,
 * re-converted with ratio_prog, nu drawn from the targets under seeds_coef, the read noise under
 * seeds_read (or none where NULL). stuck [tiles, devices, 2, cols * rows] (0 ok, 1 g_min, 2 g_max)
 * and live [tiles, cols * rows] (1, or 0: padding, dead column) may be NULL. Normal k of a tile is
 * the one tile_normals gives it, with k = (2 device + side) cols rows + j. */
void pcm_tiles(int64_t tiles, int64_t devices, int64_t cols, int64_t rows, const float *params,
               const float *table, int64_t points, const float *u_target, const float *ratio_target,
               const int64_t *seeds_prog, const float *ratio_prog, const int64_t *seeds_coef,
               const int64_t *seeds_read, const int8_t *stuck, const float *live, float *out) {
    const PcmLaw law = {devices, cols, rows, points, params, table};
    const int64_t chunks = (cols * rows + GROUP - 1) / GROUP;
    ON_TEAM(tiles * chunks, GROUP * 2 * devices, pcm_chunks(law, row0, count, u_target, ratio_target, seeds_prog,
                                                           ratio_prog, seeds_coef, seeds_read, stuck, live, out))
}
