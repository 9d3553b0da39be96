/* Host stand-in for <esp_nn.h>, the header esp-tflite-micro's ESP-NN kernels include
 * (tensorflow/lite/micro/kernels/esp_nn/<op>.cc). Nothing of esp-nn is copied here: this only chooses, from
 * esp-nn's own headers, which of its functions each name maps to.
 *
 * - Arithmetic: esp-nn's portable C (esp_nn_ansi_c.h's mapping to the *_ansi functions), because the
 *   ESP32-S3 kernels are Xtensa assembly that cannot run on this host.
 * - Scratch-buffer sizes: the ESP32-S3's (esp_nn_get_*_scratch_size_esp32s3, compiled from esp-nn's
 *   src/<kind>/<op>_esp32s3.c), so RequestScratchBufferInArena asks for exactly what it asks for on the chip. Each
 *   goes through a yfh_* wrapper (chip_host.c) that records the request, so a test can read them back.
 *
 * On the chip, esp_nn.h with CONFIG_NN_OPTIMIZED + CONFIG_IDF_TARGET_ESP32S3 includes esp_nn_esp32s3.h;
 * we include it too (for the S3 declarations), then replace its arithmetic mapping with the ANSI one. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

#include "esp_nn_esp32s3.h"

/* Every name esp_nn_ansi_c.h maps; the S3 header mapped some of them to the assembly kernels. */
#undef esp_nn_add_elementwise_s8
#undef esp_nn_mul_elementwise_s8
#undef esp_nn_mul_broadcast_channel_s8
#undef esp_nn_depthwise_conv_s8
#undef esp_nn_conv_s8
#undef esp_nn_get_conv_scratch_size
#undef esp_nn_set_conv_scratch_buf
#undef esp_nn_get_depthwise_conv_scratch_size
#undef esp_nn_set_depthwise_conv_scratch_buf
#undef esp_nn_relu6_s8
#undef esp_nn_hard_swish_s8
#undef esp_nn_get_hard_swish_scratch_size
#undef esp_nn_set_hard_swish_scratch_buf
#undef esp_nn_mean_nhwc_s8
#undef esp_nn_avg_pool_s8
#undef esp_nn_max_pool_s8
#undef esp_nn_fully_connected_s8
#undef esp_nn_fully_connected_per_ch_s8
#undef esp_nn_get_softmax_scratch_size
#undef esp_nn_set_softmax_scratch_buf
#undef esp_nn_softmax_s8
#undef esp_nn_get_logistic_s8_scratch_size
#undef esp_nn_logistic_s8_prepare
#undef esp_nn_logistic_s8
#include "esp_nn_ansi_c.h"

/* The portable kernels need no scratch; the S3 sizes are requested anyway, as the chip does. */
#undef esp_nn_get_conv_scratch_size
#undef esp_nn_get_depthwise_conv_scratch_size
#undef esp_nn_get_softmax_scratch_size
#define esp_nn_get_conv_scratch_size yfh_conv_scratch_size
#define esp_nn_get_depthwise_conv_scratch_size yfh_depthwise_conv_scratch_size
#define esp_nn_get_softmax_scratch_size yfh_softmax_scratch_size

int yfh_conv_scratch_size(const data_dims_t *input_dims, const data_dims_t *filter_dims,
                          const data_dims_t *output_dims, const conv_params_t *conv_params);
int yfh_depthwise_conv_scratch_size(const data_dims_t *input_dims, const data_dims_t *filter_dims,
                                    const data_dims_t *output_dims, const dw_conv_params_t *conv_params);
int32_t yfh_softmax_scratch_size(const int32_t width, const int32_t height);

#ifdef __cplusplus
}
#endif
