# Two commands: `make book` and `make test`. Both create .venv from pyproject.toml when it is missing.
PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PROFILE ?= default
STAMP   := $(VENV)/.medvision-installed

export MPLBACKEND ?= Agg
export PYTHONUNBUFFERED := 1

.PHONY: book test unit notebooks book-smoke browser lint bench sync clean venv lab

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name medvision --display-name "Python (medvision)" >/dev/null
	@touch $@

## make book [PROFILE=default|smoke|cpu|systems|evidence|reference|gpu]: execute the notebooks with papermill, build _build/html
book: $(STAMP)
	$(BIN)/python -m medvision.book --profile $(PROFILE)

## make test: unit tests + nbval on the notebooks (smoke parameters) + a `jb build -W` of the smoke book,
## then that book in headless Chromium (skipped, with the reason, where no Chromium is installed)
test: unit notebooks book-smoke browser

# Test runs train into a fresh folder, so leftovers of older runs (or of `make book`) never matter.
TEST_RUNS := $(CURDIR)/_build/test-runs
notebooks book-smoke: export MEDVISION_RUNS = $(TEST_RUNS)

unit: $(STAMP)
	$(BIN)/python -m pytest tests -q

# nbval runs copies of the chapters with the smoke profile's parameters injected by papermill: the stored
# parameters are the default profile's (what JupyterLab's Run All and a bare papermill run execute).
NBVAL := $(CURDIR)/_build/nbval
notebooks: $(STAMP)
	rm -rf $(TEST_RUNS) $(NBVAL)
	$(BIN)/python -m medvision.book --smoke-copies $(NBVAL)
	$(BIN)/python -m pytest -q --nbval-lax --nbval-kernel-name medvision -p no:cacheprovider $(NBVAL)

# Built in a staging copy so that `make test` never overwrites the book that `make book` produced.
book-smoke: $(STAMP)
	$(BIN)/python -m medvision.book --profile smoke --stage _build/smoke

browser: $(STAMP) book-smoke
	MEDVISION_BOOK_HTML=$(CURDIR)/_build/smoke/_build/html $(BIN)/python -m pytest -q -rs tests/book/test_browser.py

## make lab: JupyterLab on the chapters with the medvision kernel (py:percent twins open as notebooks too)
lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

lint: $(STAMP)
	$(BIN)/ruff check medvision tests bench notebooks
	$(BIN)/python -m medvision.book --check

bench: $(STAMP)
	$(BIN)/python bench/data_pipeline.py
	$(BIN)/python bench/head_only.py
	$(BIN)/python bench/stage_cache.py
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/book_jobs.py

## make sync: write the install cell (from pyproject.toml's [project.urls]) into every notebook, then re-pair
## notebooks/*.ipynb with their py:percent twins
sync: $(STAMP)
	$(BIN)/python -m medvision.book --install-cells
	$(BIN)/jupytext --sync notebooks/*.ipynb

clean:
	rm -rf _build book/generated runs
