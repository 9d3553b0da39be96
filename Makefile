# yamflash: one Makefile for users and CI. `make test` on a fresh clone sets everything up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP_CACHE ?= $(HOME)/.cache/pip
SHARED_DATA ?= $(abspath ../shared/data)
export YAMFLASH_DATA ?= $(SHARED_DATA)
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: all venv test lint test-c test-py clean help convert

# Weights: Google's yamnet.h5 is downloaded when WEIGHTS is empty (needs the internet once).
WEIGHTS ?=
CALIB_DIR ?= $(SHARED_DATA)/audio/esc50-16k-dev/audio
MODEL_DIR ?= build/model

help:
	@echo "make test      set up .venv and run lint, C core tests and the pytest suite"
	@echo "make convert   convert YAMNet to INT8 (WEIGHTS=path/to/yamnet.h5 or a YAMNet .tflite)"

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --cache-dir $(PIP_CACHE) -e '.[convert,plot,test]'
	touch $@

venv: $(VENV)/.installed

lint: venv
	$(PY) -m ruff check host tests $(wildcard scripts)

test-py: venv
	$(PY) -m pytest -q

test: lint test-py

convert: venv
	$(PY) -m yamflash convert $(if $(WEIGHTS),--weights $(WEIGHTS)) --calib-dir $(CALIB_DIR) --out $(MODEL_DIR) \
		$(if $(wildcard $(SHARED_DATA)/models/yamnet_class_map.csv),--labels $(SHARED_DATA)/models/yamnet_class_map.csv)

clean:
	rm -rf build
