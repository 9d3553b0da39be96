/* int8 quantization, bit-identical to host/yamflash/frontend.py quantize(). */
#include "yf_quant.h"

#include <math.h>

int8_t yf_quantize1(float x, float scale, int32_t zero_point)
{
    float q = x / scale; /* a division, as numpy does: x * (1/scale) can differ in the last bit */
    if (q != q) {
        return (int8_t)(zero_point < -128 ? -128 : zero_point > 127 ? 127 : zero_point);
    }
    /* Round half away from zero in float32: sign(q) * floor(|q| + 0.5). */
    float r = floorf(fabsf(q) + 0.5f);
    if (q < 0.0f) {
        r = -r;
    }
    r += (float)zero_point;
    /* Clamp in float before converting: an out-of-range float-to-int conversion is undefined in C. */
    if (r < -128.0f) {
        return -128;
    }
    if (r > 127.0f) {
        return 127;
    }
    return (int8_t)r;
}

void yf_quantize(const float *x, size_t n, float scale, int32_t zero_point, int8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = yf_quantize1(x[i], scale, zero_point);
    }
}

float yf_dequantize1(int8_t q, float scale, int32_t zero_point)
{
    return (float)((int32_t)q - zero_point) * scale;
}

void yf_dequantize(const int8_t *q, size_t n, float scale, int32_t zero_point, float *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = yf_dequantize1(q[i], scale, zero_point);
    }
}
