# The two commands in the README: `make demo` and `make test`. Both create the environment
# when it is missing or out of date, and are quick when it is already there.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean system soak-test

# Debian packages the tests use for real: espeak-ng speaks the cues, sox measures audio,
# chromium and its driver load the served views, openssl makes the TLS test's certificate.
# postgresql (initdb, pg_ctl) serves the records tests on PostgreSQL; mosquitto is the floor's broker.
# Installed only when missing (apt-get update runs once, then), so a second run stays fast.
SYSTEM_PACKAGES := espeak-ng sox chromium chromium-driver openssl postgresql mosquitto

$(STAMP): pyproject.toml sim/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "retrotread needs Python 3.12+ (found " + sys.version.split()[0] + "); install it or set PYTHON=python3.12")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ./sim -e '.[all,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/retrotread run first-week --rehearse

system:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if ! command -v apt-get >/dev/null; then echo "make: install $$missing (not a Debian machine)" >&2; exit 0; fi; \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		echo "installing $$missing"; \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: system $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q -n 4 --dist worksteal

# The whole suite RUNS times on a fresh clone of HEAD: passes, failures by test, wall times.
RUNS ?= 10
soak-test: $(STAMP)
	$(BIN)/python bench/suite_soak.py --runs $(RUNS)

bench: $(STAMP)
	$(BIN)/python bench/run.py --readme

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
