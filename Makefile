# Quick start: `make run` (train + evaluate on the shipped sample data), `make test`.
# Both create .venv and install ADRCS on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLES := src/adrcs/samples
RUN_DIR ?= runs/sample_ffn

.PHONY: run test install bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

run: install
	$(BIN)/adrcs info $(SAMPLES)/wm811k_sample.pkl.xz
	$(BIN)/adrcs train --config configs/wm811k_ffn.yaml --train $(SAMPLES)/wm811k_sample.pkl.xz \
		--val $(SAMPLES)/wm811k_sample_val.pkl.xz --out $(RUN_DIR) --epochs 25
	$(BIN)/adrcs evaluate --model $(RUN_DIR) --data $(SAMPLES)/wm811k_sample_val.pkl.xz --out $(RUN_DIR)/evaluation.json
	$(BIN)/adrcs predict --model $(RUN_DIR) --data $(SAMPLES)/wm811k_sample_val.pkl.xz --out $(RUN_DIR)/predictions.csv

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/wm811k.py
	$(BIN)/python bench/mixedwm38.py

clean:
	rm -rf runs .pytest_cache
