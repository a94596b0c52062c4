# Quick start: `make run` (train + evaluate on the shipped sample data), `make serve`, `make test`.
# Both create .venv and install ADRCS on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLES := src/adrcs/samples
RUN_DIR ?= runs/sample_ffn

.PHONY: run serve test test-fast install lock bench clean

install: $(VENV)/.installed

# Dependencies come from requirements.lock (exact versions + hashes, test extra included); ADRCS itself
# is installed on top without resolving anything again. `make lock` refreshes the lock after a change
# of pyproject.toml's dependencies.
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv
	$(BIN)/python -m uv pip compile pyproject.toml --extra test --generate-hashes --universal \
		--python-version 3.10 -o requirements.lock

run: install
	$(BIN)/adrcs info $(SAMPLES)/wm811k_sample.pkl.xz
	$(BIN)/adrcs train --config configs/wm811k_ffn.yaml --train $(SAMPLES)/wm811k_sample.pkl.xz \
		--val $(SAMPLES)/wm811k_sample_val.pkl.xz --out $(RUN_DIR) --epochs 25 --overwrite
	$(BIN)/adrcs evaluate --model $(RUN_DIR) --data $(SAMPLES)/wm811k_sample_val.pkl.xz --out $(RUN_DIR)/evaluation.json
	$(BIN)/adrcs predict --model $(RUN_DIR) --data $(SAMPLES)/wm811k_sample_val.pkl.xz --out $(RUN_DIR)/predictions.csv

# The inspection service on the sample model (trained by `make run` if missing), SQLite store in runs/.
serve: install
	test -f $(RUN_DIR)/model.ckpt || $(MAKE) run
	$(BIN)/adrcs serve --model $(RUN_DIR) --db sqlite:///runs/adrcs.db --admin-token-file runs/admin.token \
		--host 127.0.0.1 --port 8000

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

bench: install
	$(BIN)/python bench/wm811k.py
	$(BIN)/python bench/mixedwm38.py

clean:
	rm -rf runs .pytest_cache
