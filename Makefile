# The two set-up commands of the README: `make demo` and `make test`. Each builds .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

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

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check .

# The benchmark suite (benchmarks/suite.py): 15-20 min on this project's 2-core machine; results
# in benchmarks/results/suite-<root|nocap>.json and a Markdown table. `make bench ARGS=--quick`
# for a smoke run of a few minutes.
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/suite.py $(ARGS)

clean:
	rm -rf $(VENV) datasets/demo
