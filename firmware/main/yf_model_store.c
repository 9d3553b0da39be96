/* Model storage glue: esp_spiffs.h + stdio + heap_caps (SPIFFS -> PSRAM, read and hashed in chunks) or
 * esp_partition.h (mmap) + bootloader_common.h (sha256 of the mapped flash, hardware SHA), the mapped model
 * then used in place or, with YF_MODEL_COPY_TO_PSRAM, copied into PSRAM.
 * No mbedtls call: its legacy mbedtls_sha256() is gone from ESP-IDF 6.0's app API. */
#include "yf_model_store.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_partition.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "yf_model_params.h"
#include "yf_sha256.h"
#if YF_MODEL_STORAGE_SPIFFS
#include "esp_spiffs.h"
#else
#include "bootloader_common.h"     /* bootloader_common_get_sha256_of_partition (v5.5 and v6.0) */
#include "esp_flash_partitions.h"  /* PART_TYPE_DATA */
#endif

static const char *TAG = "yf_model";
static const uint8_t k_expected_sha[YF_SHA256_BYTES] = YF_MODEL_SHA256_BYTES;

static int check_sha(const uint8_t sha[YF_SHA256_BYTES], char *err, size_t cap)
{
    if (memcmp(sha, k_expected_sha, YF_SHA256_BYTES) != 0) {
        snprintf(err, cap, "model sha256 %02x%02x%02x%02x... does not match the firmware's %.8s...; flash the model "
                 "this firmware was generated for", sha[0], sha[1], sha[2], sha[3], YF_MODEL_SHA256_HEX);
        return -1;
    }
    return 0;
}

#if YF_MODEL_STORAGE_SPIFFS
/* app_main runs this before the tasks start; IDLE0 (watched by the task watchdog,
 * CONFIG_ESP_TASK_WDT_CHECK_IDLE_TASK_CPU0) only runs when app_main blocks. Reading and hashing 4 MB takes
 * seconds, so it goes in chunks of YF_LOAD_CHUNK bytes with a one-tick vTaskDelay after each. */
#define YF_LOAD_CHUNK (64 * 1024)
#define YF_LOAD_YIELD_TICKS 1

static void yield_to_idle(void)
{
    vTaskDelay(YF_LOAD_YIELD_TICKS);
}

static size_t read_file(void *ctx, uint8_t *dst, size_t n)
{
    return fread(dst, 1, n, (FILE *)ctx);
}

int yf_model_load(yf_model_t *out, char *err, size_t cap)
{
    err[0] = '\0';
    const esp_vfs_spiffs_conf_t conf = {
        .base_path = YF_MODEL_SPIFFS_BASE,
        .partition_label = YF_MODEL_PARTITION_LABEL,
        .max_files = 1,
        .format_if_mount_failed = false, /* never erase a model partition that does not mount */
    };
    esp_err_t e = esp_vfs_spiffs_register(&conf);
    if (e != ESP_OK) {
        snprintf(err, cap, "cannot mount SPIFFS partition '%s' (%s); flash the model image", YF_MODEL_PARTITION_LABEL,
                 esp_err_to_name(e));
        return -1;
    }
    int rc = -1;
    uint8_t *buf = NULL;
    FILE *f = NULL;
    struct stat st;
    if (stat(YF_MODEL_SPIFFS_PATH, &st) != 0) {
        snprintf(err, cap, "%s is missing from the model partition", YF_MODEL_SPIFFS_PATH);
        goto done;
    }
    if ((size_t)st.st_size != YF_MODEL_BYTES) {
        snprintf(err, cap, "model is %ld bytes, the firmware expects %u", (long)st.st_size, (unsigned)YF_MODEL_BYTES);
        goto done;
    }
    buf = heap_caps_aligned_alloc(16, YF_MODEL_BYTES, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
    if (buf == NULL) {
        snprintf(err, cap, "cannot allocate %u bytes of PSRAM for the model (largest free block %u)",
                 (unsigned)YF_MODEL_BYTES, (unsigned)heap_caps_get_largest_free_block(MALLOC_CAP_SPIRAM));
        goto done;
    }
    f = fopen(YF_MODEL_SPIFFS_PATH, "rb");
    uint8_t sha[YF_SHA256_BYTES];
    if (f == NULL || yf_copy_hashed(buf, YF_MODEL_BYTES, YF_LOAD_CHUNK, read_file, f, yield_to_idle, sha) != 0) {
        snprintf(err, cap, "cannot read %s", YF_MODEL_SPIFFS_PATH);
        goto done;
    }
    if (check_sha(sha, err, cap) != 0) {
        goto done;
    }
    out->data = buf;
    out->bytes = YF_MODEL_BYTES;
    out->where = "psram";
    buf = NULL;
    rc = 0;
done:
    if (f != NULL) {
        fclose(f);
    }
    heap_caps_free(buf);
    esp_vfs_spiffs_unregister(YF_MODEL_PARTITION_LABEL); /* the copy in PSRAM is all we need */
    if (rc == 0) {
        ESP_LOGI(TAG, "model: %u bytes from SPIFFS into PSRAM, sha256 ok", (unsigned)YF_MODEL_BYTES);
    }
    return rc;
}
#else
#ifndef YF_MODEL_COPY_TO_PSRAM
#define YF_MODEL_COPY_TO_PSRAM 0 /* headers generated before the option: memory-mapped */
#endif
#define YF_COPY_CHUNK (64 * 1024)

/* Raw image header, little-endian (host/yamflash/target/partitions.py MODEL_IMAGE_HEADER). */
typedef struct {
    char magic[8];
    uint32_t version, header_bytes, model_bytes, flags;
    uint8_t sha256[32];
    uint8_t pad[8];
} yf_image_header_t;
_Static_assert(sizeof(yf_image_header_t) == YF_MODEL_IMAGE_HEADER_BYTES, "model image header layout");

int yf_model_load(yf_model_t *out, char *err, size_t cap)
{
    err[0] = '\0';
    const esp_partition_t *p =
        esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY, YF_MODEL_PARTITION_LABEL);
    if (p == NULL) {
        snprintf(err, cap, "no data partition '%s'; flash the partition table", YF_MODEL_PARTITION_LABEL);
        return -1;
    }
    const void *map = NULL;
    esp_partition_mmap_handle_t handle;
    esp_err_t e = esp_partition_mmap(p, 0, p->size, ESP_PARTITION_MMAP_DATA, &map, &handle);
    if (e != ESP_OK) {
        snprintf(err, cap, "cannot map partition '%s' (%u bytes): %s", p->label, (unsigned)p->size, esp_err_to_name(e));
        return -1;
    }
    yf_image_header_t h;
    memcpy(&h, map, sizeof h);
    if (memcmp(h.magic, YF_MODEL_IMAGE_MAGIC, sizeof h.magic) != 0 || h.version != YF_MODEL_IMAGE_VERSION ||
        h.header_bytes != YF_MODEL_IMAGE_HEADER_BYTES) {
        snprintf(err, cap, "partition '%s' holds no yamflash model image; flash model_partition.bin", p->label);
        goto fail;
    }
    if (h.model_bytes != YF_MODEL_BYTES || (size_t)h.header_bytes + h.model_bytes > p->size) {
        snprintf(err, cap, "model image is %u bytes, the firmware expects %u (partition %u bytes)",
                 (unsigned)h.model_bytes, (unsigned)YF_MODEL_BYTES, (unsigned)p->size);
        goto fail;
    }
    if (memcmp(h.sha256, k_expected_sha, YF_SHA256_BYTES) != 0) {
        snprintf(err, cap, "model image header names another model than this firmware's %.8s...",
                 YF_MODEL_SHA256_HEX);
        goto fail;
    }
    /* The flash bytes themselves, not the header's claim: ESP-IDF hashes the range with the SHA peripheral
     * (mbedtls in v5.5, PSA in v6.0), mapping as much of it at a time as free MMU pages allow
     * (bootloader_sha256_flash_contents). */
    uint8_t sha[YF_SHA256_BYTES];
    e = bootloader_common_get_sha256_of_partition(p->address + h.header_bytes, h.model_bytes, PART_TYPE_DATA, sha);
    if (e != ESP_OK) {
        snprintf(err, cap, "sha256 of partition '%s' failed: %s", p->label, esp_err_to_name(e));
        goto fail;
    }
    if (check_sha(sha, err, cap) != 0) {
        goto fail;
    }
    const uint8_t *model = (const uint8_t *)map + h.header_bytes;
#if YF_MODEL_COPY_TO_PSRAM
    /* gen --model-place psram (its default where model + arena fit the PSRAM): weights read through the
     * data cache from octal PSRAM instead of QIO flash, a faster Invoke by the chip estimate (README, "Chip
     * layout"). Copied in chunks with a yield after each, as the SPIFFS load does, so IDLE0 keeps feeding the
     * task watchdog; the sha256 was checked on the flash bytes above; the mapping is released after. */
    uint8_t *copy = heap_caps_aligned_alloc(16, h.model_bytes, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT);
    if (copy == NULL) {
        snprintf(err, cap, "cannot allocate %u bytes of PSRAM for the model copy (largest free block %u); "
                 "regenerate with --model-place flash", (unsigned)h.model_bytes,
                 (unsigned)heap_caps_get_largest_free_block(MALLOC_CAP_SPIRAM));
        goto fail;
    }
    for (size_t off = 0; off < h.model_bytes; off += YF_COPY_CHUNK) {
        const size_t n = h.model_bytes - off < YF_COPY_CHUNK ? h.model_bytes - off : YF_COPY_CHUNK;
        memcpy(copy + off, model + off, n);
        vTaskDelay(1);
    }
    esp_partition_munmap(handle);
    out->data = copy;
    out->bytes = h.model_bytes;
    out->where = "psram";
    ESP_LOGI(TAG, "model: %u bytes from partition '%s' at 0x%x copied into PSRAM, sha256 ok", (unsigned)h.model_bytes,
             p->label, (unsigned)p->address);
    return 0;
#endif
    out->data = model; /* stays mapped for the life of the firmware */
    out->bytes = h.model_bytes;
    out->where = "flash-mmap";
    ESP_LOGI(TAG, "model: %u bytes mapped from partition '%s' at 0x%x, sha256 ok", (unsigned)h.model_bytes, p->label,
             (unsigned)p->address);
    return 0;
fail:
    esp_partition_munmap(handle);
    return -1;
}
#endif
