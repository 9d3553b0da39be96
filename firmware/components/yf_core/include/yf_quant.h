/* yf_quant: float <-> int8 as TFLite's QUANTIZE/DEQUANTIZE ops do, bit-identical to
 * host/yamflash/frontend.py quantize(): q = x / scale in float32, round half away from zero, + zero
 * point, clamp to [-128, 127]. Division (not multiplication by 1/scale) keeps the rounding identical. */
#ifndef YF_QUANT_H
#define YF_QUANT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Quantize one value; NaN maps to the zero point. */
int8_t yf_quantize1(float x, float scale, int32_t zero_point);

/* Quantize n values from x into out. */
void yf_quantize(const float *x, size_t n, float scale, int32_t zero_point, int8_t *out);

/* Dequantize one value: (q - zero_point) * scale in float32. */
float yf_dequantize1(int8_t q, float scale, int32_t zero_point);

/* Dequantize n values from q into out. */
void yf_dequantize(const int8_t *q, size_t n, float scale, int32_t zero_point, float *out);

#ifdef __cplusplus
}
#endif
#endif
