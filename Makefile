# lbadmin — the two commands a new user needs:
#   make run    start the appliance (WebUI on https://localhost:9443/lbadmin/)
#   make test   run the whole test suite (PostgreSQL + Redis on 127.0.0.1)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip

# The suite's servers; override on the command line to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres:postgres@127.0.0.1:5432/lbadmin
TEST_BROKER_URL   ?= redis://127.0.0.1:6379/15
TEST_VAR_DIR      ?= $(CURDIR)/var/test

.PHONY: run test test-fast lint format stop status lock bench clean

run: $(VENV)/.deps-run
	scripts/system-packages.sh run || echo "Continuing without the load-balancer daemons."
	$(PY) manage.py serve

test: $(VENV)/.deps-test
	scripts/system-packages.sh test
	scripts/test-services.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	LBADMIN_VAR_DIR=$(TEST_VAR_DIR) CELERY_TASK_DEFAULT_QUEUE=lbadmin-test \
	$(PY) -m pytest --cov --cov-report=term:skip-covered $(PYTEST_ARGS)

# The developer's loop: everything but real daemons, browsers, HA pairs and server processes,
# on two pytest workers (a module stays on one: some share fixed namespace names), keeping
# the test databases between runs.
test-fast: $(VENV)/.deps-test
	scripts/test-services.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	LBADMIN_VAR_DIR=$(TEST_VAR_DIR) CELERY_TASK_DEFAULT_QUEUE=lbadmin-test \
	$(PY) -m pytest -m "not daemons and not browser and not ha and not processes" \
		-n 2 --dist loadfile --reuse-db -p no:cacheprovider $(PYTEST_ARGS)

lint: $(VENV)/.deps-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.deps-test
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Stop the HAProxy / stunnel / keepalived that `make run` started (they outlive the WebUI).
stop: $(VENV)/.deps-run
	$(PY) manage.py daemons stop

status: $(VENV)/.deps-run
	$(PY) manage.py daemons status

bench: $(VENV)/.deps-test
	scripts/system-packages.sh bench
	$(PY) bench/run.py
	$(PY) bench/l7.py $(BENCH_ARGS)
	$(PY) bench/overview.py
	$(PY) bench/stunnel.py
	$(PY) bench/pem_parse.py
	$(PY) bench/lync_checks.py
	$(PY) bench/lync_wizard.py
	$(PY) bench/ha.py
	$(PY) bench/network_revert.py

# Re-pin the dependencies after editing requirements*.in.
lock: $(VENV)/.deps-test
	$(PIP) install -q pip-tools
	$(VENV)/bin/pip-compile -q --no-header --strip-extras --no-emit-index-url \
		--no-emit-find-links -o requirements.lock requirements.in
	$(VENV)/bin/pip-compile -q --no-header --strip-extras --no-emit-index-url \
		--no-emit-find-links -o requirements-dev.lock requirements-dev.in

$(PY):
	scripts/system-packages.sh venv
	$(PYTHON) -m venv $(VENV)

$(VENV)/.deps-run: requirements.lock | $(PY)
	$(PIP) install -q -r requirements.lock
	touch $@

$(VENV)/.deps-test: requirements-dev.lock $(VENV)/.deps-run
	$(PIP) install -q -r requirements-dev.lock
	touch $@

clean:
	rm -rf $(VENV) var/test
