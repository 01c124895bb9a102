# Set-up and everyday tasks. Every target creates the virtual environment in
# .venv first if it is missing, so each works on a fresh clone.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCALE := src/duckmkt/locale

.PHONY: demo test catalogs bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,test]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/duckmkt demo

test: $(VENV)/.installed
	$(BIN)/pytest

# Extract the messages, merge them into the Chinese catalog and compile it.
catalogs: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k N_ --no-location --sort-output -o $(LOCALE)/duckmkt.pot src/duckmkt
	$(BIN)/pybabel update -i $(LOCALE)/duckmkt.pot -d $(LOCALE) -D duckmkt -l zh_CN --no-fuzzy-matching
	$(BIN)/pybabel compile -d $(LOCALE) -D duckmkt --statistics

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/train_online_retail.py

clean:
	rm -rf $(VENV) out
