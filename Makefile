# The two set-up commands of the README: `make demo` and `make test`. Each builds .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean lerobot-env

# LeRobot 0.6 needs Python >= 3.12: the first one found (pyenv's, then PATH's); tests/lerobot run streamrec
# lerobot-record in .venv312 and skip only where there is none. Cold, .venv312 takes ~2 min and ~6 GB (torch).
PYTHON312 ?= $(shell for c in $$(pyenv root 2>/dev/null)/versions/3.1[2-9]*/bin/python3.1[2-9] \
  $$(command -v python3.12 python3.13); do "$$c" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null \
  && { echo "$$c"; break; }; done)
VENV312 := .venv312
LEROBOT_PLUGINS := $(wildcard tests/lerobot/plugins/*/pyproject.toml)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Two short episodes from three built-in synthetic cameras (320x240, so that a 2-core machine
# encodes them with room to spare), then the health check.
demo: $(VENV)/.installed
	rm -rf datasets/demo
	$(BIN)/streamrec record --dataset.root=datasets/demo --dataset.fps=30 \
	  --dataset.num_episodes=2 --dataset.episode_time_s=5 --dataset.reset_time_s=1 \
	  --dataset.single_task="demo: synthetic cameras" \
	  --cameras='{top: {type: synthetic, width: 320, height: 240}, wrist: {type: synthetic, width: 320, height: 240}, side: {type: synthetic, width: 320, height: 240}}'
	$(BIN)/streamrec verify datasets/demo

$(VENV312)/.installed: pyproject.toml $(LEROBOT_PLUGINS)
	$(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/python -m pip install --quiet --upgrade pip
	$(VENV312)/bin/python -m pip install --quiet -e '.[lerobot,display]' $(patsubst %/pyproject.toml,-e %,$(LEROBOT_PLUGINS))
	touch $@

lerobot-env:
	@if [ -n "$(PYTHON312)" ]; then $(MAKE) --no-print-directory $(VENV312)/.installed; \
	else echo "no Python >= 3.12 here: tests/lerobot will skip"; fi

test: $(VENV)/.installed lerobot-env
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check .

# The benchmark suite (benchmarks/suite.py): 15-20 min on this project's 2-core machine; results
# in benchmarks/results/suite-<root|nocap>.json and a Markdown table. `make bench ARGS=--quick`
# for a smoke run of a few minutes.
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/suite.py $(ARGS)

clean:
	rm -rf $(VENV) $(VENV312) datasets/demo
