# yamflash: one Makefile for users and CI. `make test` on a fresh clone sets everything up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_CACHE ?= $(HOME)/.cache/pip
SHARED_DATA ?= $(abspath ../shared/data)
export YAMFLASH_DATA ?= $(SHARED_DATA)
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: all venv test lint test-c test-py clean help convert

# Weights: the test data's YAMNet export when ../shared/data is beside the clone, else Google's yamnet.h5,
# downloaded when WEIGHTS is empty (needs the internet once). A finished conversion is cached by its inputs in
# ~/.cache/yamflash, so converting the same weights with the same audio again takes seconds.
WEIGHTS ?= $(wildcard $(SHARED_DATA)/models/yamnet_keras_drq_logmel_out.tflite)
CALIB_DIR ?= $(SHARED_DATA)/audio/esc50-16k-dev/audio
MODEL_DIR ?= build/model

help:
	@echo "make test      set up .venv and run lint, C core tests and the pytest suite"
	@echo "make demo      no board needed: convert, gen, build and flash the virtual board, play a clip, monitor"
	@echo "make convert   convert YAMNet to INT8 (WEIGHTS=path/to/yamnet.h5 or a YAMNet .tflite)"
	@echo "make flash     gen + build + flash a board (BOARD=esp32s3-n16r8|esp32s3-n8r2|sim, PORT=auto|/dev/ttyACM0,"
	@echo "               GEN_ARGS='--watch Dog'); skips only what the board's flash already holds"
	@echo "make monitor   live detections, latency and memory from the board on PORT"

$(VENV)/.installed: pyproject.toml
	@rm -f $@
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --cache-dir $(PIP_CACHE) -e '.[convert,plot,firmware,test]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(PY) -m ruff check host tests $(wildcard scripts)

# The whole suite; the HIL tests in tests/hil run on the virtual board (pass BOARD_UNDER_TEST=/dev/ttyACM0 for a real one).
BOARD_UNDER_TEST ?= sim
test-py: venv
	$(PY) -m pytest -q --port $(BOARD_UNDER_TEST)

# yf_core, the firmware's portable C core, under AddressSanitizer and UndefinedBehaviorSanitizer.
include firmware/components/yf_core/sources.mk
C_TEST_FLAGS := -std=c99 -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all -g -O1
test-c: $(YF_CORE_SRCS) $(wildcard $(YF_CORE_INC)/*.h) tests/c/test_core.c
	@mkdir -p build/c
	$(CC) $(C_TEST_FLAGS) -I$(YF_CORE_INC) $(YF_CORE_SRCS) tests/c/test_core.c -o build/c/test_core -lm
	./build/c/test_core

test: lint test-c test-py test-fuzz

# ---- fuzzing: yf_core's protocol decoders under libFuzzer + ASan/UBSan (gcc's sanitizers and random
# mutations where clang is missing), then C vs Python on the same kind of input; any crash, sanitizer report or
# disagreement fails. FUZZ_SECONDS is for each of the two; `make test` runs 30 + 30 s. Figures: build/fuzz/report.json.
FUZZ_SECONDS ?= 300
.PHONY: fuzz test-fuzz
fuzz: venv
	$(PY) tests/fuzz/run.py --seconds $(FUZZ_SECONDS)

test-fuzz: venv
	$(PY) tests/fuzz/run.py --seconds 30

convert: venv
	$(PY) -m yamflash convert $(if $(WEIGHTS),--weights $(WEIGHTS)) --calib-dir $(CALIB_DIR) --out $(MODEL_DIR) \
		$(if $(wildcard $(SHARED_DATA)/models/yamnet_class_map.csv),--labels $(SHARED_DATA)/models/yamnet_class_map.csv)

clean:
	rm -rf build

# ---- flash, monitor, demo and the HIL suite ------------------------------------------------------------
# BOARD: build profile (esp32s3-n16r8, esp32s3-n8r2, sim); PORT: auto, sim or a serial device (unset: yamflash's
# default, i.e. $ESPPORT, else auto; sim for BOARD=sim).
BOARD ?= esp32s3-n16r8
PORT ?=
WAV ?= $(firstword $(wildcard $(SHARED_DATA)/audio/demo/baby_5000ms.wav))
DEMO_SECONDS ?= 12
DETECT ?= Baby cry, infant cry
.PHONY: flash monitor demo test-hil firmware-build

$(MODEL_DIR)/model.json: | venv
	$(MAKE) convert

# gen and build run every time: each is incremental by itself (gen rewrites only files whose content changed,
# PlatformIO and idf.py recompile only what changed), so any changed input (model, yamflash.toml, GEN_ARGS,
# templates, firmware sources, yamflash itself) reaches the board, and flash skips only when the board's
# flash already holds every image. Gen settings for make: yamflash.toml, or GEN_ARGS='--watch Dog'.
GEN_ARGS ?=
BUILD_ARGS ?=
firmware-build: $(MODEL_DIR)/model.json | venv
	$(PY) -m yamflash gen --model $(MODEL_DIR)/model.json --board $(BOARD) $(GEN_ARGS)
	$(PY) -m yamflash build --board $(BOARD) $(BUILD_ARGS)

flash: firmware-build
	$(PY) -m yamflash flash $(if $(PORT),--port $(PORT)) --board $(BOARD)

monitor: venv
	$(PY) -m yamflash monitor $(if $(PORT),--port $(PORT)) --board $(BOARD)

demo: venv
	$(MAKE) flash BOARD=sim PORT=sim
	$(PY) -m yamflash monitor --port sim $(if $(WAV),--mic $(WAV)) --duration $(DEMO_SECONDS) \
		--detect "$(DETECT)" --model-json $(MODEL_DIR)/model.json --log build/demo-events.jsonl

test-hil: venv
	$(PY) -m pytest -q tests/hil --port $(BOARD_UNDER_TEST)
