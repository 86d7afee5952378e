/* The machine's floors for one recurrent step, for bench/step_floor.py (built there with
 * `cc -O3 -march=native -shared`, loaded with ctypes; nothing in rnnc needs it).
 *
 *   add_chain   16 dependent integer adds per iteration: one cycle each, so the clock
 *   fma_peak    independent 512-bit FMAs: the most float32 multiply-adds per cycle
 *   stream      512-bit loads over a buffer, again and again: read bandwidth where it fits
 *   matvec      out = h @ R on float32 weights packed in 128-column panels, each step's h
 *               from the previous step's out (a recurrence: steps cannot overlap)
 *   matvec_bf16 the same on bfloat16 weights with AVX512_BF16's dot products (half the bytes)
 */
#include <immintrin.h>
#include <stdint.h>

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

/* 12 independent accumulators x 16 lanes per iteration: 192 multiply-adds. */
float fma_peak(int64_t n) {
    __m512 a[12];
    const __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
    for (int u = 0; u < 12; u++) a[u] = _mm512_set1_ps((float)u);
    for (int64_t i = 0; i < n; i++) {
#pragma GCC unroll 12
        for (int u = 0; u < 12; u++) a[u] = _mm512_fmadd_ps(a[u], m, c);
    }
    __m512 s = a[0];
    for (int u = 1; u < 12; u++) s = _mm512_add_ps(s, a[u]);
    return _mm512_reduce_add_ps(s);
}

/* n floats (a multiple of 128) read `reps` times. */
float stream(const float *a, int64_t n, int64_t reps) {
    __m512 s[8];
    for (int u = 0; u < 8; u++) s[u] = _mm512_setzero_ps();
    for (int64_t r = 0; r < reps; r++) {
        for (int64_t i = 0; i < n; i += 128) {
#pragma GCC unroll 8
            for (int u = 0; u < 8; u++) s[u] = _mm512_add_ps(s[u], _mm512_loadu_ps(a + i + 16 * u));
        }
    }
    for (int u = 1; u < 8; u++) s[0] = _mm512_add_ps(s[0], s[u]);
    return _mm512_reduce_add_ps(s[0]);
}

/* Keeps h in range (no overflow, no denormals) while depending on every output. */
static void next_h(float *h, const float *out, int k) {
    for (int i = 0; i < k; i++) h[i] = 0.5f + 1e-3f * out[i];
}

/* packed: [n/128][k][128] float32 (panel p holds columns 128p..128p+127 row by row). */
void matvec(const float *packed, float *h, float *out, int k, int n, int64_t reps) {
    for (int64_t r = 0; r < reps; r++) {
        for (int p = 0; p < n / 128; p++) {
            const float *panel = packed + (int64_t)p * k * 128;
            __m512 acc[8];
            for (int u = 0; u < 8; u++) acc[u] = _mm512_setzero_ps();
            for (int i = 0; i < k; i++) {
                const __m512 b = _mm512_set1_ps(h[i]);
#pragma GCC unroll 8
                for (int u = 0; u < 8; u++) acc[u] = _mm512_fmadd_ps(b, _mm512_loadu_ps(panel + i * 128 + 16 * u), acc[u]);
            }
            for (int u = 0; u < 8; u++) _mm512_storeu_ps(out + p * 128 + 16 * u, acc[u]);
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
