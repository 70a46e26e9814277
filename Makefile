# One entry point: `make demo` cuts out a bundled sample, `make test` runs the tests.
# Both create .venv first when needed (`make setup`, idempotent and fast when done).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= ../shared/data

.PHONY: setup demo test serve evaluate clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[train,web,video,test]'
	touch $(STAMP)

demo: setup
	$(BIN)/kirinuki cutout src/kirinuki/samples/sylvie-on-meadow.jpg src/kirinuki/samples/sylvie-on-white.jpg -o demo-output --overwrite
	@echo "cutouts written to demo-output/"

test: setup
	$(BIN)/python -m pytest -q

serve: setup
	$(BIN)/kirinuki serve

evaluate: setup
	$(BIN)/kirinuki evaluate --data $(DATA)/val/anime --backgrounds $(DATA)/val/backgrounds --out eval-output

clean:
	rm -rf demo-output eval-output
