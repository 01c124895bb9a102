# Set-up and everyday tasks. Every target creates the virtual environment in
# .venv first if it is missing, so each works on a fresh clone.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCALE := src/duckmkt/locale

.PHONY: demo test system-deps catalogs bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,test,spark]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/duckmkt demo

# Debian packages some tests drive: Chromium (HTML report), psql (PostgreSQL
# endpoint) and Java 17 (Spark). Installed with apt-get when missing; that
# needs root, otherwise the command to run is printed.
SYSTEM_TOOLS := chromium:chromium psql:postgresql-client java:openjdk-17-jre-headless

system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	  else \
	    echo "Missing system packages:$$missing; install them with: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

test: $(VENV)/.installed system-deps
	$(BIN)/pytest

# Extract the messages, merge them into the Chinese catalog (created on the
# first run) and compile it. Translate the new entries of
# $(LOCALE)/zh_CN/LC_MESSAGES/duckmkt.po, then run it again so the .mo matches.
# PYBABEL=/path/to/pybabel uses an installed Babel (2.14 or later) instead of
# the virtual environment.
PYBABEL ?= $(BIN)/pybabel

catalogs: $(if $(filter $(BIN)/pybabel,$(PYBABEL)),$(VENV)/.installed)
	$(PYBABEL) extract -F babel.cfg -k N_ --no-location --sort-output --project duckmkt -o $(LOCALE)/duckmkt.pot src/duckmkt
	$(PYBABEL) update -i $(LOCALE)/duckmkt.pot -d $(LOCALE) -D duckmkt -l zh_CN --init-missing --no-fuzzy-matching --ignore-obsolete
	$(PYBABEL) compile -d $(LOCALE) -D duckmkt -l zh_CN --statistics

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/train_online_retail.py

clean:
	rm -rf $(VENV) out
