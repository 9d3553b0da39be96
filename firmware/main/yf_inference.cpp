// TFLite Micro glue (esp-tflite-micro): tflite::GetModel, MicroInterpreter, the generated op resolver, a
// MicroProfilerInterface that times each op with esp_timer. Checked against esp-tflite-micro v1.3.7's
// micro_interpreter.h, micro_profiler_interface.h, micro_mutable_op_resolver.h and core/c/common.h.
#include "yf_inference.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <new>

#include "esp_heap_caps.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "yf_model_params.h"
#include "yf_op_resolver.h"

namespace {

const char *TAG = "yf_infer";

// Internal RAM kept free for task stacks, drivers and the console after the arena is placed there.
constexpr size_t kInternalReserve = 64 * 1024;
constexpr int kMaxProfiledOps = YF_INFER_MAX_OPS;
constexpr int kMaxEvents = 128;

// Sums the time of every op event by tag while enabled; TFLite Micro calls it around each op's Invoke.
class OpTimer : public tflite::MicroProfilerInterface {
  public:
    uint32_t BeginEvent(const char *tag) override {
        if (!on_ || n_ >= kMaxEvents) return kMaxEvents;
        tags_[n_] = tag;
        start_[n_] = esp_timer_get_time();
        return static_cast<uint32_t>(n_++);
    }
    void EndEvent(uint32_t handle) override {
        if (handle >= static_cast<uint32_t>(n_)) return;
        Add(tags_[handle], static_cast<uint32_t>(esp_timer_get_time() - start_[handle]));
    }
    void NewInvoke() { n_ = 0; }
    void Enable(bool on) {
        on_ = on;
        if (on) n_ops_ = 0;
    }
    size_t Read(yf_op_time_t *out, size_t max) const {
        size_t n = 0;
        for (; n < static_cast<size_t>(n_ops_) && n < max; ++n) out[n] = ops_[n];
        return n;
    }

  private:
    void Add(const char *tag, uint32_t us) {
        for (int i = 0; i < n_ops_; ++i) {
            if (ops_[i].op == tag || strcmp(ops_[i].op, tag) == 0) {
                ops_[i].us += us;
                return;
            }
        }
        if (n_ops_ < kMaxProfiledOps) ops_[n_ops_++] = {tag, us};
    }
    bool on_ = false;
    int n_ = 0;
    const char *tags_[kMaxEvents] = {};
    int64_t start_[kMaxEvents] = {};
    yf_op_time_t ops_[kMaxProfiledOps] = {};
    int n_ops_ = 0;
};

YfOpResolver g_resolver;
OpTimer g_timer;
alignas(tflite::MicroInterpreter) uint8_t g_interp_mem[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter *g_interp = nullptr;
uint8_t *g_arena = nullptr;
size_t g_arena_size = 0;
const char *g_arena_where = "internal";

uint8_t *AllocArena(size_t size, bool allow_internal, const char **where) {
    const uint32_t internal = MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT;
    if (allow_internal && heap_caps_get_largest_free_block(internal) >= size + kInternalReserve) {
        void *p = heap_caps_aligned_alloc(16, size, internal);
        if (p != nullptr) {
            *where = "internal";
            return static_cast<uint8_t *>(p);
        }
    }
    *where = "psram";
    return static_cast<uint8_t *>(heap_caps_aligned_alloc(16, size, MALLOC_CAP_SPIRAM | MALLOC_CAP_8BIT));
}

TfLiteStatus Build(const tflite::Model *model, size_t size, bool allow_internal) {
    if (g_interp != nullptr) {
        g_interp->~MicroInterpreter();
        g_interp = nullptr;
    }
    heap_caps_free(g_arena);
    g_arena = AllocArena(size, allow_internal, &g_arena_where);
    g_arena_size = g_arena != nullptr ? size : 0;
    if (g_arena == nullptr) return kTfLiteError;
    g_interp = new (g_interp_mem) tflite::MicroInterpreter(model, g_resolver, g_arena, size, nullptr, &g_timer);
    return g_interp->AllocateTensors();
}

bool Near(float a, float b) { return fabsf(a - b) <= 1e-6f * fabsf(b); }

}  // namespace

extern "C" int yf_infer_init(const uint8_t *model_data, char *err, size_t cap) {
    const tflite::Model *model = tflite::GetModel(model_data);
    if (model->version() != TFLITE_SCHEMA_VERSION) {
        snprintf(err, cap, "model schema %u, TFLite Micro reads %d", static_cast<unsigned>(model->version()),
                 TFLITE_SCHEMA_VERSION);
        return -1;
    }
    if (const char *op = yf_register_ops(g_resolver)) {
        snprintf(err, cap, "cannot register op %s in the resolver", op);
        return -1;
    }
    int rc = 0;
    if (Build(model, YF_ARENA_BYTES, YF_ARENA_INTERNAL != 0) != kTfLiteOk) {  // placement: `yamflash gen`
        // Find out what it really needs: retry in PSRAM with a generous arena and report the bytes used.
        const size_t big = 4 * static_cast<size_t>(YF_ARENA_BYTES);
        if (Build(model, big, false) != kTfLiteOk) {
            snprintf(err, cap, "AllocateTensors failed with %u bytes and with %u bytes of PSRAM (see the log "
                     "line above for the bytes requested)", static_cast<unsigned>(YF_ARENA_BYTES),
                     static_cast<unsigned>(big));
            return -1;
        }
        snprintf(err, cap, "AllocateTensors needs %u bytes, the firmware configures %u; running with a %u-byte "
                 "PSRAM arena: regenerate with a larger --arena-margin",
                 static_cast<unsigned>(g_interp->arena_used_bytes()), static_cast<unsigned>(YF_ARENA_BYTES),
                 static_cast<unsigned>(big));
        rc = -2;
    }
    TfLiteTensor *in = g_interp->input(0);
    TfLiteTensor *out = g_interp->output(0);
    if (in->type != kTfLiteInt8 || in->bytes != YF_MODEL_INPUT_DIM1 * YF_MODEL_INPUT_DIM2 ||
        out->type != kTfLiteInt8 || out->bytes != YF_MODEL_NUM_CLASSES) {
        snprintf(err, cap, "model tensors are not int8 [1,%d,%d] -> [1,%d]", YF_MODEL_INPUT_DIM1,
                 YF_MODEL_INPUT_DIM2, YF_MODEL_NUM_CLASSES);
        return -1;
    }
    if (!Near(in->params.scale, YF_MODEL_INPUT_SCALE) || in->params.zero_point != YF_MODEL_INPUT_ZERO_POINT ||
        !Near(out->params.scale, YF_MODEL_OUTPUT_SCALE) || out->params.zero_point != YF_MODEL_OUTPUT_ZERO_POINT) {
        snprintf(err, cap, "model quantization differs from the generated header; run `yamflash gen` again");
        return -1;
    }
    ESP_LOGI(TAG, "arena %u bytes in %s, %u used", static_cast<unsigned>(g_arena_size), g_arena_where,
             static_cast<unsigned>(g_interp->arena_used_bytes()));
    return rc;
}

extern "C" void yf_infer_info(yf_infer_info_t *o) {
    memset(o, 0, sizeof *o);
    o->arena_size = g_arena_size;
    o->arena_where = g_arena_where;
    if (g_interp == nullptr) return;
    o->arena_used = g_interp->arena_used_bytes();
    const TfLiteTensor *in = g_interp->input(0);
    const TfLiteTensor *out = g_interp->output(0);
    o->in_scale = in->params.scale;
    o->in_zp = in->params.zero_point;
    o->out_scale = out->params.scale;
    o->out_zp = out->params.zero_point;
    o->in_bytes = in->bytes;
    o->out_bytes = out->bytes;
}

extern "C" int8_t *yf_infer_input(void) { return g_interp->input(0)->data.int8; }

extern "C" const int8_t *yf_infer_output(void) { return g_interp->output(0)->data.int8; }

extern "C" int yf_infer_invoke(uint32_t *us) {
    g_timer.NewInvoke();
    const int64_t t0 = esp_timer_get_time();
    const TfLiteStatus s = g_interp->Invoke();
    *us = static_cast<uint32_t>(esp_timer_get_time() - t0);
    return s == kTfLiteOk ? 0 : -1;
}

extern "C" void yf_infer_profile(bool on) { g_timer.Enable(on); }

extern "C" size_t yf_infer_profile_read(yf_op_time_t *out, size_t max) { return g_timer.Read(out, max); }
