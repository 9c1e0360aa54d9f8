# The README's two commands:
#   make app    create .venv, install, start the app on the bundled data and models
#   make test   create .venv, install the app and test tools (and Chromium), run the tests
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: app test install install-dev browser clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .

install-dev: install
	$(PY) -m pip install --quiet -r requirements-dev.txt

# Debian's Chromium drives the browser test (tests/test_browser.py); nothing is downloaded at test time.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium not found: the browser test will be skipped"; fi; }

app: install
	$(VENV)/bin/streamlit run app.py

test: install-dev browser
	$(PY) -m pytest -q
