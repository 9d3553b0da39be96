# yf_core sources for host builds (Makefile, tests/c); keep in step with CMakeLists.txt.
YF_CORE_DIR ?= firmware/components/yf_core
YF_CORE_SRCS := $(addprefix $(YF_CORE_DIR)/src/,yf_b64.c yf_core.c yf_detect.c yf_device.c yf_frontend.c yf_json.c yf_line.c yf_patch.c yf_proto.c yf_quant.c yf_stats.c)
YF_CORE_INC := $(YF_CORE_DIR)/include
