/* Reads a SPIFFS image the way the firmware's SPIFFS does, to prove an image holds the model.
 *
 * Compiled by tests/test_spiffs_image.py against pellepl/spiffs (../shared/sdk/mkspiffs-0.2.3/spiffs/src)
 * with ESP-IDF v5.5's own spiffs_config.h and an sdkconfig.h holding the CONFIG_SPIFFS_* values of the
 * generated sdkconfig.defaults. Mounts the image as esp_spiffs.c does (log block = erase block = 4096,
 * log page = CONFIG_SPIFFS_PAGE_SIZE, phys_size = partition size), lists every file ("name<TAB>size"),
 * and copies the named one to OUT.
 *
 * usage: spiffs_read IMAGE NAME OUT      exit 0 on success, 1 with a message on stderr otherwise
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spiffs.h"
#include "spiffs_nucleus.h" /* spiffs_fd, spiffs_cache, spiffs_cache_page: esp_spiffs.c sizes its buffers with them */

#define MAX_FILES 5 /* esp_vfs_spiffs_conf_t.max_files of the firmware */

static unsigned char *s_image;
static size_t s_size;

void spiffs_api_lock(struct spiffs_t *fs) { (void)fs; }
void spiffs_api_unlock(struct spiffs_t *fs) { (void)fs; }

static s32_t hal_read(spiffs *fs, u32_t addr, u32_t size, u8_t *dst) {
    (void)fs;
    if ((size_t)addr + size > s_size) return -1;
    memcpy(dst, s_image + addr, size);
    return SPIFFS_OK;
}

/* Mounting may finish an interrupted operation; the image in memory takes it, the file is never written. */
static s32_t hal_write(spiffs *fs, u32_t addr, u32_t size, u8_t *src) {
    (void)fs;
    if ((size_t)addr + size > s_size) return -1;
    for (u32_t i = 0; i < size; i++) s_image[addr + i] &= src[i]; /* NOR flash: bits only go 1 -> 0 */
    return SPIFFS_OK;
}

static s32_t hal_erase(spiffs *fs, u32_t addr, u32_t size) {
    (void)fs;
    if ((size_t)addr + size > s_size) return -1;
    memset(s_image + addr, 0xff, size);
    return SPIFFS_OK;
}

static int fail(const char *what, s32_t code) {
    fprintf(stderr, "spiffs_read: %s (SPIFFS error %d)\n", what, (int)code);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s IMAGE NAME OUT\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) return fail("cannot open the image", 0);
    fseek(f, 0, SEEK_END);
    s_size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    s_image = malloc(s_size);
    if (!s_image || fread(s_image, 1, s_size, f) != s_size) return fail("cannot read the image", 0);
    fclose(f);

    static spiffs fs;
    spiffs_config cfg = {0};
    cfg.hal_read_f = hal_read;
    cfg.hal_write_f = hal_write;
    cfg.hal_erase_f = hal_erase;
    cfg.log_block_size = 4096;
    cfg.log_page_size = CONFIG_SPIFFS_PAGE_SIZE;
    cfg.phys_addr = 0;
    cfg.phys_erase_block = 4096;
    cfg.phys_size = (u32_t)s_size;
    /* buffer sizes as esp_spiffs.c computes them */
    u32_t fds_sz = MAX_FILES * sizeof(spiffs_fd);
    u32_t cache_sz = sizeof(spiffs_cache) + MAX_FILES * (sizeof(spiffs_cache_page) + cfg.log_page_size);
    u8_t *work = malloc(cfg.log_page_size * 2), *fds = calloc(1, fds_sz), *cache = calloc(1, cache_sz);
    if (!work || !fds || !cache) return fail("out of memory", 0);
    s32_t res = SPIFFS_mount(&fs, &cfg, work, fds, fds_sz, cache, cache_sz, NULL);
    if (res != SPIFFS_OK) return fail("mount failed", SPIFFS_errno(&fs));

    spiffs_DIR dir;
    struct spiffs_dirent ent, *e;
    if (!SPIFFS_opendir(&fs, "/", &dir)) return fail("opendir failed", SPIFFS_errno(&fs));
    while ((e = SPIFFS_readdir(&dir, &ent)) != NULL) printf("%s\t%u\n", (const char *)e->name, (unsigned)e->size);
    SPIFFS_closedir(&dir);

    spiffs_file fd = SPIFFS_open(&fs, argv[2], SPIFFS_RDONLY, 0);
    if (fd < 0) return fail("open failed", SPIFFS_errno(&fs));
    FILE *out = fopen(argv[3], "wb");
    if (!out) return fail("cannot create OUT", 0);
    static u8_t buf[4096];
    s32_t n;
    while ((n = SPIFFS_read(&fs, fd, buf, sizeof buf)) > 0) {
        if (fwrite(buf, 1, (size_t)n, out) != (size_t)n) return fail("cannot write OUT", 0);
    }
    if (n < 0 && SPIFFS_errno(&fs) != SPIFFS_ERR_END_OF_OBJECT) return fail("read failed", SPIFFS_errno(&fs));
    fclose(out);
    SPIFFS_close(&fs, fd);
    SPIFFS_unmount(&fs);
    return 0;
}
