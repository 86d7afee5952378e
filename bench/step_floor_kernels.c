/* The machine's floors for one recurrent step, for bench/step_floor.py (built there with
 * `cc -O3 -march=native -shared`, loaded with ctypes; nothing in rnnc needs it).
 *
 *   add_chain   16 dependent integer adds per iteration: one cycle each, so the clock
 *   fma_peak    independent vector FMAs: the most float32 multiply-adds per cycle
 *   stream      vector loads over a buffer, again and again: read bandwidth where it fits
 *   matvec      out = h @ R on float32 weights packed in 128-column panels, each step's h
 *               from the previous step's out (a recurrence: steps cannot overlap)
 *   matvec_bf16 the same on bfloat16 weights with AVX512_BF16's dot products (half the bytes)
 *
 * The vectors are AVX-512's (16 floats) where the compiler targets AVX512F, else AVX2's
 * with FMA (8 floats; `vector_floats` says which); a CPU with neither cannot build it.
 */
#include <immintrin.h>
#include <stdint.h>

#if defined(__AVX512F__)
#define LANES 16
typedef __m512 vec;
#define vset1 _mm512_set1_ps
#define vzero _mm512_setzero_ps
#define vfmadd _mm512_fmadd_ps
#define vadd _mm512_add_ps
#define vload _mm512_loadu_ps
#define vstore _mm512_storeu_ps
static float vsum(vec v) { return _mm512_reduce_add_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
#define LANES 8
typedef __m256 vec;
#define vset1 _mm256_set1_ps
#define vzero _mm256_setzero_ps
#define vfmadd _mm256_fmadd_ps
#define vadd _mm256_add_ps
#define vload _mm256_loadu_ps
#define vstore _mm256_storeu_ps
static float vsum(vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#else
#error "bench/step_floor_kernels.c needs AVX-512F or AVX2 with FMA (cc -march=native on this CPU targets neither)"
#endif

/* float32 lanes per vector: 16 (AVX-512) or 8 (AVX2). */
int vector_floats(void) { return LANES; }

int64_t add_chain(int64_t n) {
    int64_t x = 0;
    for (int64_t i = 0; i < n; i++) {
        __asm__ volatile(
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
            : "+r"(x));
    }
    return x;
}

/* 12 independent accumulators x LANES per iteration: 12 * vector_floats() multiply-adds. */
float fma_peak(int64_t n) {
    vec a[12];
    const vec m = vset1(0.999f), c = vset1(1e-3f);
    for (int u = 0; u < 12; u++) a[u] = vset1((float)u);
    for (int64_t i = 0; i < n; i++) {
#pragma GCC unroll 12
        for (int u = 0; u < 12; u++) a[u] = vfmadd(a[u], m, c);
    }
    vec s = a[0];
    for (int u = 1; u < 12; u++) s = vadd(s, a[u]);
    return vsum(s);
}

/* n floats (a multiple of 128) read `reps` times, 8 vectors at a time. */
float stream(const float *a, int64_t n, int64_t reps) {
    vec s[8];
    for (int u = 0; u < 8; u++) s[u] = vzero();
    for (int64_t r = 0; r < reps; r++) {
        for (int64_t i = 0; i < n; i += 8 * LANES) {
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++) s[u] = vadd(s[u], vload(a + i + LANES * u));
        }
    }
    for (int u = 1; u < 8; u++) s[0] = vadd(s[0], s[u]);
    return vsum(s[0]);
}

/* Keeps h in range (no overflow, no denormals) while depending on every output. */
static void next_h(float *h, const float *out, int k) {
    for (int i = 0; i < k; i++) h[i] = 0.5f + 1e-3f * out[i];
}

/* packed: [n/128][k][128] float32 (panel p holds columns 128p..128p+127 row by row); each
 * panel in blocks of 8 vectors (one block with AVX-512, two with AVX2's 16 registers). */
void matvec(const float *packed, float *h, float *out, int k, int n, int64_t reps) {
    for (int64_t r = 0; r < reps; r++) {
        for (int p = 0; p < n / 128; p++) {
            const float *panel = packed + (int64_t)p * k * 128;
            for (int j = 0; j < 128; j += 8 * LANES) {
                vec acc[8];
                for (int u = 0; u < 8; u++) acc[u] = vzero();
                for (int i = 0; i < k; i++) {
                    const vec b = vset1(h[i]);
#pragma GCC unroll 8
                    for (int u = 0; u < 8; u++) acc[u] = vfmadd(b, vload(panel + i * 128 + j + LANES * u), acc[u]);
                }
                for (int u = 0; u < 8; u++) vstore(out + p * 128 + j + LANES * u, acc[u]);
            }
        }
        next_h(h, out, k);
    }
}

int has_bf16(void) {
#ifdef __AVX512BF16__
    return 1;
#else
    return 0;
#endif
}

/* packed: [n/128][k/2][128][2] bfloat16 as uint16 (row pairs interleaved, as vdpbf16ps reads them). */
void matvec_bf16(const uint16_t *packed, float *h, float *out, int k, int n, int64_t reps) {
#ifdef __AVX512BF16__
    uint32_t pairs[4096];
    for (int64_t r = 0; r < reps; r++) {
        for (int i = 0; i < k; i += 2) {  /* h as bfloat16 pairs (round to nearest even) */
            __m128bh two = _mm_cvtneps_pbh(_mm_set_ps(0.0f, 0.0f, h[i + 1], h[i]));
            pairs[i / 2] = (uint32_t)_mm_cvtsi128_si32((__m128i)two);
        }
        for (int p = 0; p < n / 128; p++) {
            const uint16_t *panel = packed + (int64_t)p * k * 128;
            __m512 acc[8];
            for (int u = 0; u < 8; u++) acc[u] = _mm512_setzero_ps();
            for (int i = 0; i < k / 2; i++) {
                const __m512bh b = (__m512bh)_mm512_set1_epi32((int)pairs[i]);
#pragma GCC unroll 8
                for (int u = 0; u < 8; u++)
                    acc[u] = _mm512_dpbf16_ps(acc[u], b, (__m512bh)_mm512_loadu_si512(panel + i * 256 + 32 * u));
            }
            for (int u = 0; u < 8; u++) _mm512_storeu_ps(out + p * 128 + 16 * u, acc[u]);
        }
        next_h(h, out, k);
    }
#else
    (void)packed; (void)h; (void)out; (void)k; (void)n; (void)reps;
#endif
}
