/* Bench statistics: see yf_stats.h. */
#include "yf_stats.h"

#include <math.h>
#include <string.h>

/* In-place heapsort: O(n log n) for bench runs of thousands of samples, no recursion, no memory. */
static void sift_down(uint32_t *a, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) {
            return;
        }
        if (child + 1 < n && a[child + 1] > a[child]) {
            child++;
        }
        if (a[root] >= a[child]) {
            return;
        }
        uint32_t t = a[root];
        a[root] = a[child];
        a[child] = t;
        root = child;
    }
}

uint32_t yf_percentile_nearest_rank(const uint32_t *a, size_t n, unsigned p)
{
    size_t rank = ((size_t)p * n + 99) / 100;
    return a[rank == 0 ? 0 : rank - 1];
}

void yf_bench_summarize(uint32_t *us, size_t n, yf_bench_summary_t *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0) {
        return;
    }
    for (size_t i = n / 2; i-- > 0;) {
        sift_down(us, i, n);
    }
    for (size_t end = n - 1; end > 0; end--) {
        uint32_t t = us[0];
        us[0] = us[end];
        us[end] = t;
        sift_down(us, 0, end);
    }
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        sum += us[i];
    }
    double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) {
        sq += (us[i] - mean) * (us[i] - mean);
    }
    out->n = (uint32_t)n;
    out->mean = mean;
    out->std = n > 1 ? sqrt(sq / (double)n) : 0.0;
    out->min = us[0];
    out->max = us[n - 1];
    out->p50 = yf_percentile_nearest_rank(us, n, 50);
    out->p90 = yf_percentile_nearest_rank(us, n, 90);
    out->p99 = yf_percentile_nearest_rank(us, n, 99);
}
