# Two commands set everything up on a fresh machine:
#   make repro   install, then run the whole pipeline (`dvc repro`)
#   make test    install, then lint, check formatting and run the test suite
# and one runs every stage in minutes on a CPU:
#   make quick [DATA=<local data folder>] [MODEL=<local model folder>]
# Every value given on the command line (make report REV=...) or read from the environment
# is taken literally: make expands nothing in it (a `$(shell ...)` stays text), and it
# reaches its script as an environment variable, never pasted into a recipe, where a quote
# or a `;` would run as shell. Each script checks its values and refuses a bad one in one
# line. (`VAR:=...` on the command line is make's own immediate expansion: never used here.)
USER_VARS := VENV PYTHON DATA MODEL QUICK_SETTINGS QUICK_EXTRA VEGA_DIR VEGA_PACKAGES \
	NAME VERSION REV GPU_WHEELS
literal = $(eval override $(1) := $$(value $(1)))
$(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(call literal,$(v))))
$(foreach v,$(USER_VARS),$(if $(filter environment,$(origin $(v))),$(call literal,$(v))))

VENV ?= .venv
PYTHON ?= python3
ifneq ($(words $(VENV)),1)
$(error VENV=$(VENV): name one folder, without spaces)
endif
BIN := $(abspath $(VENV))/bin
# Stages run `python -m imdb_sentiment.stages.X`: put the virtual environment first so that is its Python.
export PATH := $(BIN):$(PATH)
# No "make[1]: Entering directory" lines in the output when make runs inside make.
MAKEFLAGS += --no-print-directory

.PHONY: install install-dev lock repro quick results offline-plots test test-fast lint format \
	report runs browser-deps release pull push

# The environment comes from the lock files (scripts/lock.py): every package at an exact
# version, checked against its hash. torch is pinned in pyproject.toml but installed first,
# on its own, so that its build is the machine's (CPU here, CUDA from PyPI on a GPU box).
TORCH_PIN := $(shell grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
$(VENV)/.installed: requirements/runtime.txt pyproject.toml
	"$$PYTHON" -m venv -- "$$VENV"
	"$$VENV/bin/python" -m pip install -q "$(TORCH_PIN)"
	"$$VENV/bin/python" -m pip install -q --require-hashes --no-deps -r requirements/runtime.txt
	"$$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
	"$$VENV/bin/python" -m pip check -q
	touch -- "$$VENV/.installed"

# What the tests and the linters need beside the runtime (the dev, s3, scale and ci extras).
$(VENV)/.dev-installed: $(VENV)/.installed requirements/dev.txt
	"$$VENV/bin/python" -m pip install -q --require-hashes --no-deps -r requirements/dev.txt
	"$$VENV/bin/python" -m pip check -q
	touch -- "$$VENV/.dev-installed"

install: $(VENV)/.installed
install-dev: $(VENV)/.dev-installed

# Write requirements/*.txt again from pyproject.toml (needs the network).
lock: install
	"$$VENV/bin/python" -m pip install -q uv
	"$$VENV/bin/python" scripts/lock.py

repro: install
	dvc repro

# `make quick`: every stage as the DVC experiment `quick` on a capped slice of the data,
# with settings for a short CPU run (scripts/quick.sh), sized for a 6-layer, 384-wide model
# on a laptop CPU; DistilBERT-base is about 4 times slower to train.
QUICK_SETTINGS := \
	-S prepare.max_train_samples=1600 -S prepare.max_validation_samples=200 \
	-S prepare.max_test_samples=1000 -S tokenize.max_length=128 \
	-S train_distilbert.learning_rate=1e-4 -S train_distilbert.warmup_ratio=0.1 \
	-S train_distilbert.num_train_epochs=1 -S train_distilbert.per_device_train_batch_size=8 \
	-S train_distilbert.per_device_eval_batch_size=64 -S train_distilbert.logging_steps=10 \
	-S train_distilbert.eval_strategy=steps -S train_distilbert.save_strategy=steps \
	-S train_distilbert.eval_steps=50 -S train_distilbert.save_steps=50
DATA ?=
MODEL ?=
QUICK_EXTRA ?=
quick: install
	@scripts/quick.sh

# The workspace's test-split results, one row per model.
results: install
	@python scripts/results.py

# `dvc plots show` with local vega copies instead of a CDN (scripts/offline_plots.sh).
offline-plots: install
	@scripts/offline_plots.sh

lint: install-dev
	ruff check .
	ruff format --check .

# Everything, and the quick tier: the unit tests alone (no dvc, no pipeline process).
test: lint
	pytest

test-fast: install-dev
	pytest -m "not e2e"

format: install-dev
	ruff check --fix .
	ruff format .

# `make release NAME=distilbert VERSION=1.0.0`: publish a model of dvc.yaml's `artifacts:`
# as the Git tag NAME@vVERSION, after `dvc push` (scripts/release.sh, docs/serving.md).
NAME ?=
VERSION ?=
release: install
	@scripts/release.sh "$$NAME" "$$VERSION"

# `make report`: the tables a reviewer pastes into a pull request: each model's test accuracy
# compared review by review (with its noise), metrics and params of the workspace against
# main (or REV=<commit, branch, tag or DVC experiment name>) (scripts/report.py).
REV ?= main
report: install
	@python scripts/report.py "$$REV"

# `make runs`: the experiments of the current commit and of every commit experiments were
# run from (pulled ones too), one row each, with the base model and each model's test
# accuracy (scripts/runs.sh).
runs: install
	@scripts/runs.sh

# `make pull` / `make push`: dvc pull / dvc push through the default DVC remote; a failure
# ends with one line naming the remote, its URL and what to do (scripts/remote.py).
pull: install
	@python scripts/remote.py pull

push: install
	@python scripts/remote.py push

# What tests/test_plots_render.py needs to open `dvc plots show`'s page offline: headless
# Chromium + chromedriver (Debian packages, installed when missing) and local
# copies of vega, vega-lite and vega-embed (npm, into the git-ignored .cache/vega). apt-get
# runs as root, or through `sudo -n` for a user who has passwordless sudo (a CI runner).
# Outside CI a failed install only warns (the browser test then skips and says why); with
# CI=true it fails.
VEGA_DIR := .cache/vega
VEGA_PACKAGES := vega@5.22.1 vega-lite@5.2.0 vega-embed@6.18.2
browser-deps:
	@set -f; for package in $$VEGA_PACKAGES; do case "$$package" in \
	  -*|*[!A-Za-z0-9@._/~^-]*) ;; ?*@?*) continue;; esac; \
	  echo "error: VEGA_PACKAGES: $$package is not a name@version" >&2; exit 1; done; \
	case "$$VEGA_DIR" in -*|*[!A-Za-z0-9._/-]*|'') \
	  echo "error: VEGA_DIR: not a plain folder name" >&2; exit 1;; esac
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  sudo=""; \
	  if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo="sudo -n"; fi; \
	  ($$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install \
	    -y -qq $$missing >/dev/null) \
	  || { echo "browser-deps: could not install$$missing"; [ "$$CI" != "true" ]; }; \
	fi
	@set -f; if [ ! -f "$$VEGA_DIR/node_modules/vega-embed/build/vega-embed.min.js" ]; then \
	  npm install --prefix "$$VEGA_DIR" --no-audit --no-fund --no-save --silent \
	    $$VEGA_PACKAGES \
	  || { echo "browser-deps: could not install $$VEGA_PACKAGES"; [ "$$CI" != "true" ]; }; \
	fi

# Wheels of the packages that bench/gpu_check.sh needs beyond torch and transformers, at the
# lock's versions, for a GPU machine with no package index (CPython 3.12, x86-64 Linux);
# carry .whl/ along.
GPU_WHEEL_NAMES := pydantic pydantic-core annotated-types typing-inspection typing-extensions \
	ruamel-yaml datasets dill multiprocess
GPU_WHEELS = $(foreach name,$(GPU_WHEEL_NAMES),\
	$(shell grep -io '^$(subst -,[-_.],$(name))==[^ ;\]*' requirements/runtime.txt | head -n 1))
.PHONY: gpu-wheels
gpu-wheels:
	@set -f; for wheel in $$GPU_WHEELS; do case "$$wheel" in \
	  -*|*[!A-Za-z0-9._=-]*) ;; ?*==?*) continue;; esac; \
	  echo "error: GPU_WHEELS: $$wheel is not a name==version" >&2; exit 1; done
	set -f; "$$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	  --platform manylinux2014_x86_64 -d .whl $$GPU_WHEELS

export $(USER_VARS)
