/* A libFuzzer stand-in for compilers without -fsanitize=fuzzer (gcc): replays the corpus, then mutates it at
 * random for a bounded time. No coverage guidance, so it finds less per input; the sanitizers and the
 * harness's own checks judge every input the same way, and a failing input is written out for replay.
 *
 *   fuzz_proto_gcc [-max_total_time=S] [-seed=N] [-artifact_prefix=DIR/] [-dict=FILE] CORPUS_DIR_OR_FILE...
 *
 * Prints libFuzzer-style final stats (stat::number_of_executed_units, stat::average_exec_per_sec).
 */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT 16384
#define MAX_CORPUS 65536
#define MAX_TOKENS 256

typedef struct {
    uint8_t *data;
    size_t size;
} blob_t;

static blob_t s_corpus[MAX_CORPUS];
static size_t s_ncorpus;
static blob_t s_tokens[MAX_TOKENS];
static size_t s_ntokens;
static uint8_t s_cur[MAX_INPUT];
static size_t s_cur_size;
static const char *s_prefix = "./";
static uint64_t s_rng = 0x9E3779B97F4A7C15ull;

static uint64_t rnd(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static size_t below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* On a crash (abort from a check or a sanitizer), leave the input that did it, as libFuzzer would. */
static void save_crash(int sig)
{
    char path[4096];
    snprintf(path, sizeof path, "%scrash-standalone", s_prefix);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(s_cur, 1, s_cur_size, f);
        fclose(f);
    }
    fprintf(stderr, "==standalone== deadly signal %d; input written to %s\n", sig, path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void run(const uint8_t *data, size_t size)
{
    memcpy(s_cur, data, size);
    s_cur_size = size;
    LLVMFuzzerTestOneInput(s_cur, size);
}

static void add_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f || s_ncorpus >= MAX_CORPUS) {
        if (f) {
            fclose(f);
        }
        return;
    }
    static uint8_t tmp[MAX_INPUT];
    size_t n = fread(tmp, 1, MAX_INPUT, f);
    fclose(f);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        return;
    }
    memcpy(buf, tmp, n);
    s_corpus[s_ncorpus].data = buf;
    s_corpus[s_ncorpus].size = n;
    s_ncorpus++;
}

static void add_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return;
    }
    if (!S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        add_file(p);
    }
    if (d) {
        closedir(d);
    }
}

/* libFuzzer dictionary lines: name="value" with \xNN, \\ and \" escapes. */
static void load_dict(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f) && s_ntokens < MAX_TOKENS) {
        char *q = strchr(line, '"');
        if (!q || line[0] == '#') {
            continue;
        }
        uint8_t tok[256];
        size_t n = 0;
        for (char *p = q + 1; *p && *p != '"' && n < sizeof tok; p++) {
            if (*p == '\\' && p[1] == 'x' && p[2] && p[3]) {
                char hex[3] = {p[2], p[3], 0};
                tok[n++] = (uint8_t)strtol(hex, NULL, 16);
                p += 3;
            } else if (*p == '\\' && p[1]) {
                tok[n++] = (uint8_t)*++p;
            } else {
                tok[n++] = (uint8_t)*p;
            }
        }
        s_tokens[s_ntokens].data = malloc(n ? n : 1);
        memcpy(s_tokens[s_ntokens].data, tok, n);
        s_tokens[s_ntokens].size = n;
        s_ntokens++;
    }
    if (f) {
        fclose(f);
    }
}

static size_t mutate(uint8_t *buf, size_t size)
{
    static const uint8_t interesting[] = {0, 1, '\n', '\r', '"', '\\', '{', '}', '[', ']', ',', ':', '-', '.',
                                          '0', '9', 'e', 0x7f, 0x80, 0xc3, 0xed, 0xf4, 0xff};
    int rounds = 1 + (int)below(4);
    for (int r = 0; r < rounds; r++) {
        size_t at = below(size + 1);
        switch (below(7)) {
        case 0: /* flip a bit */
            if (size) {
                buf[below(size)] ^= (uint8_t)(1u << below(8));
            }
            break;
        case 1: /* an interesting byte */
            if (size) {
                buf[below(size)] = interesting[below(sizeof interesting)];
            }
            break;
        case 2: { /* delete a range */
            size_t n = 1 + below(size > 16 ? 16 : size + 1);
            if (at + n <= size) {
                memmove(buf + at, buf + at + n, size - at - n);
                size -= n;
            }
            break;
        }
        case 3: { /* insert random bytes */
            size_t n = 1 + below(8);
            if (size + n <= MAX_INPUT) {
                memmove(buf + at + n, buf + at, size - at);
                for (size_t i = 0; i < n; i++) {
                    buf[at + i] = (uint8_t)rnd();
                }
                size += n;
            }
            break;
        }
        case 4: /* a dictionary token */
            if (s_ntokens) {
                blob_t *t = &s_tokens[below(s_ntokens)];
                if (size + t->size <= MAX_INPUT) {
                    memmove(buf + at + t->size, buf + at, size - at);
                    memcpy(buf + at, t->data, t->size);
                    size += t->size;
                }
            }
            break;
        case 5: { /* splice in part of another corpus entry */
            blob_t *o = &s_corpus[below(s_ncorpus)];
            size_t from = below(o->size + 1), n = below(o->size - from + 1);
            if (size + n <= MAX_INPUT) {
                memmove(buf + at + n, buf + at, size - at);
                memcpy(buf + at, o->data + from, n);
                size += n;
            }
            break;
        }
        default: { /* repeat a range (long lines, deep nesting) */
            if (at >= size) {
                break;
            }
            size_t n = 1 + below(size - at > 32 ? 32 : size - at), times = 1 + below(64);
            if (size + n * times <= MAX_INPUT) {
                memmove(buf + at + n * (times + 1), buf + at + n, size - at - n);
                for (size_t i = 1; i <= times; i++) {
                    memcpy(buf + at + n * i, buf + at, n);
                }
                size += n * times;
            }
            break;
        }
        }
    }
    return size;
}

int main(int argc, char **argv)
{
    double seconds = 10;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "-max_total_time=", 16) == 0) {
            seconds = atof(argv[i] + 16);
        } else if (strncmp(argv[i], "-seed=", 6) == 0) {
            s_rng = strtoull(argv[i] + 6, NULL, 10) | 1;
        } else if (strncmp(argv[i], "-artifact_prefix=", 17) == 0) {
            s_prefix = argv[i] + 17;
        } else if (strncmp(argv[i], "-dict=", 6) == 0) {
            load_dict(argv[i] + 6);
        } else if (argv[i][0] != '-') {
            add_path(argv[i]);
        }
    }
    signal(SIGABRT, save_crash);
    signal(SIGSEGV, save_crash);
    signal(SIGBUS, save_crash);
    signal(SIGFPE, save_crash);
    static const uint8_t empty_line[] = "@yf {}\n";
    if (!s_ncorpus) {
        s_corpus[0].data = (uint8_t *)empty_line;
        s_corpus[0].size = sizeof empty_line - 1;
        s_ncorpus = 1;
    }
    double t0 = now_s();
    unsigned long long execs = 0;
    for (size_t i = 0; i < s_ncorpus; i++, execs++) {
        run(s_corpus[i].data, s_corpus[i].size);
    }
    static uint8_t buf[MAX_INPUT];
    while (now_s() - t0 < seconds) {
        for (int k = 0; k < 256; k++, execs++) {
            blob_t *b = &s_corpus[below(s_ncorpus)];
            memcpy(buf, b->data, b->size);
            size_t n = mutate(buf, b->size);
            run(buf, n);
        }
    }
    double dt = now_s() - t0;
    printf("stat::number_of_executed_units: %llu\n", execs);
    printf("stat::average_exec_per_sec:     %.0f\n", dt > 0 ? execs / dt : 0.0);
    printf("stat::corpus_entries:           %zu\n", s_ncorpus);
    return 0;
}
