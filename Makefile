# Two commands: `make run` and `make test`. Everything else is optional.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.txt | cut -c1-12)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install browsers run test lint stop worker stress

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py setup_demo
	$(PY) manage.py runserver 127.0.0.1:8000

worker: install
	$(PY) -m celery -A config worker --loglevel=INFO --concurrency=2

# Debian's chromium and a CJK font (Korean glyphs, not boxes) for the browser
# tests (tests/browser), installed with apt when missing (as root).
# Playwright never downloads a browser.
browsers:
	test -x /usr/bin/chromium && fc-list :lang=ko | grep -q . || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
		fonts-noto-cjk)

test: install browsers
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

stress: install
	$(PY) -m pytest -m stress -p no:cacheprovider

stop: install
	$(PY) manage.py stop_database
