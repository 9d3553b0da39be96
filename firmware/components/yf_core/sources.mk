# yf_core sources for host builds (Makefile, tests/c); keep in step with CMakeLists.txt.
YF_CORE_DIR ?= firmware/components/yf_core
YF_CORE_SRCS := $(addprefix $(YF_CORE_DIR)/src/,yf_core.c yf_detect.c yf_frontend.c yf_patch.c yf_proto.c yf_quant.c)
YF_CORE_INC := $(YF_CORE_DIR)/include
