/* The ESP32-S3 assembly kernels (esp-nn src/<kind>/<op>_esp32s3.S and the inline-asm 1x1 conv) that the S3
 * C files compiled here for their scratch-size functions refer to. They cannot run on this host and are
 * never called (the arithmetic is esp-nn's portable C, see include/esp_nn.h): each only satisfies the
 * linker, and aborts loudly if anything ever calls it. The library links with -z defs, so a symbol
 * missing from this list fails the build instead of failing at run time. */
#include <stdio.h>
#include <stdlib.h>

#define S3_ASM(name)                                                                                    \
    void name(void);                                                                                    \
    void name(void) {                                                                                   \
        fprintf(stderr, "chip_host: ESP32-S3 assembly kernel %s called on the host\n", #name);         \
        abort();                                                                                        \
    }

S3_ASM(esp_nn_conv_s8_1x1)
S3_ASM(esp_nn_conv_s8_filter_aligned_input_padded_esp32s3)
S3_ASM(esp_nn_conv_s8_mult8_1x1_esp32s3)
S3_ASM(esp_nn_dot_s8_aligned_esp32s3)
S3_ASM(esp_nn_aligned_s8_to_s16_with_offset_esp32s3)
S3_ASM(esp_nn_s8_to_s16_esp32s3)
S3_ASM(esp_nn_depthwise_conv_s16_mult1_esp32s3)
S3_ASM(esp_nn_depthwise_conv_s16_mult1_3x3_esp32s3)
S3_ASM(esp_nn_depthwise_conv_s16_mult4_esp32s3)
S3_ASM(esp_nn_depthwise_conv_s16_mult8_esp32s3)
S3_ASM(esp_nn_depthwise_conv_s16_mult8_3x3_esp32s3)
S3_ASM(esp_nn_depthwise_conv_s8_mult1_3x3_padded_esp32s3)
