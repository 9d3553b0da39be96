/* yf_stats: invoke-time statistics of a bench run. Not protocol: the same summary serves the chip, the virtual
 * board and the host tools, so a `bench` reply means one thing wherever it comes from. Percentiles are
 * nearest-rank (the smallest sample with at least p % of the samples at or below it), never interpolated. */
#ifndef YF_STATS_H
#define YF_STATS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Invoke-time statistics of a bench run (microseconds). */
typedef struct {
    uint32_t n;
    double mean, std; /* std: population standard deviation */
    uint32_t min, max, p50, p90, p99;
} yf_bench_summary_t;

/* Time of one op type summed over a profiled run (the firmware's per-op profile). */
typedef struct {
    const char *op; /* TFLite Micro's tag for the op (its registration name) */
    uint32_t us;    /* summed over the profiled invokes */
} yf_bench_op_t;

/* Sort us[n] in place (heapsort: no recursion, no memory) and summarize it (n = 0 gives zeros). */
void yf_bench_summarize(uint32_t *us, size_t n, yf_bench_summary_t *out);

/* Nearest-rank percentile p (0..100) of sorted a[n] (n > 0). */
uint32_t yf_percentile_nearest_rank(const uint32_t *a, size_t n, unsigned p);

#ifdef __cplusplus
}
#endif
#endif
