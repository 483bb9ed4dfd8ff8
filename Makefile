# Fresh machine: `make demo` or `make test` create .venv, install the pinned requirements, build the
# extension against that torch (`pip install --no-build-isolation -e .`) and run.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
SETUP := $(VENV)/.dopfast-setup
BUILT := $(VENV)/.dopfast-built
SOURCES := $(shell find csrc dopfast -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh' -o -name '*.inc') CMakeLists.txt pyproject.toml

.PHONY: demo test test-all lint gpu-check bench experiments clean

$(SETUP): requirements-dev.txt
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -r requirements-dev.txt
	touch $@

$(BUILT): $(SETUP) $(SOURCES)
	$(VPY) -m pip install -q --no-build-isolation -e .
	touch $@

demo: $(BUILT)
	$(VPY) -m dopfast demo

test: $(BUILT)
	$(VPY) -m pytest -q

CXX_SOURCES = $(shell find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.inc')

lint: $(SETUP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/clang-format --dry-run --Werror $(CXX_SOURCES)

# On a machine with a GPU and its own Python/torch (no .venv; it reaches no package registry): build against
# that torch, run every test with the CUDA ones included (slow ones too), then the --device cuda benchmarks,
# whose tables replace the GPU section of bench/RESULTS.md. Without a GPU it builds, the CUDA tests skip,
# and the benchmark step says so.
GPU_PYTHON ?= python3
gpu-check:
	$(GPU_PYTHON) -m pip install -q --no-build-isolation -e .
	$(GPU_PYTHON) -c "import torch, dopfast; print(dopfast.build_info())"
	$(GPU_PYTHON) -m pytest -q -m "" -rs python_tests
	$(GPU_PYTHON) bench/gpu_report.py

test-all: $(BUILT)
	$(VPY) -m pytest -q -m ""

bench: $(BUILT)
	$(VPY) -m dopfast bench ops
	$(VPY) -m dopfast bench loop
	$(VPY) -m dopfast bench sop
	$(VPY) -m dopfast bench rpca --budget 30
	$(VPY) -m dopfast bench dip
	$(VPY) -m dopfast bench scaleout

experiments: $(BUILT)
	cd experiments && for s in rpca_alpha rpca_phase rpca_equivalence rpca_video sop_table sop_separation \
	  sop_linear dip_alpha dip_restore; do ../$(VPY) $$s.py || exit 1; done

clean:
	rm -rf build $(BUILT)
