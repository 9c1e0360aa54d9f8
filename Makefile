# The README's two commands:
#   make app    create .venv, install, start the app on the bundled data and models
#   make test   create .venv, install the app and test tools (and Chromium), run the tests
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
# pip retries an unreachable index 5 times per package with back-off: offline (PyTorch's
# index in requirements.txt) that took 18 min here against 3 min with 0 retries.
PIP_RETRIES ?= 0
PIP     = $(PY) -m pip install --quiet --retries $(PIP_RETRIES)

.PHONY: app test install install-dev browser clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PIP) -r requirements.txt
	$(PIP) --no-deps --no-build-isolation -e .

install-dev: install
	$(PIP) -r requirements-dev.txt

# Debian's Chromium drives the browser test (tests/test_browser.py); nothing is downloaded at test time.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: the browser test will be skipped"; fi; }

app: install
	$(VENV)/bin/streamlit run app.py

# pytest-xdist runs a test process per core, each with one OpenMP thread: otherwise sklearn's
# and torch's thread pools spin against each other (an evaluate test: 3 min alone, >9 min so).
test: install-dev browser
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --maxprocesses 4 --durations=20
