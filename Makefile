# `make run` sets up everything and starts the whole stack; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
WEB_PORT ?= 8000
FLOWER_PORT ?= 5555
# Where the admin's links to Flower point: the Flower that `make run` starts.
FLOWER_URL ?= http://127.0.0.1:$(FLOWER_PORT)
export WEB_PORT FLOWER_PORT FLOWER_URL
# The Procfile's Flower login unless FLOWER_BASIC_AUTH gives another.
FLOWER_LOGIN = $(if $(FLOWER_BASIC_AUTH),the FLOWER_BASIC_AUTH user,admin / demo-pass-123)

.PHONY: install prepare run test test-postgres bench postman docs lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

# Stops at once, naming the service and how to start it, when RabbitMQ or Redis is missing.
prepare: install
	$(BIN)/python manage.py check_services
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createcachetable
	$(BIN)/python manage.py setup_periodic_tasks
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0
	$(BIN)/python manage.py seed_demo

run: prepare
	@echo
	@echo "Starting web, a worker per queue (assignments, notifications, maintenance), beat and Flower:"
	@echo "  Portal and pages     http://127.0.0.1:$(WEB_PORT)/   (alice, victor, vera, vince / demo-pass-123)"
	@echo "  Admin                http://127.0.0.1:$(WEB_PORT)/admin/   (admin / demo-pass-123)"
	@echo "  API token            POST http://127.0.0.1:$(WEB_PORT)/api/auth/token/"
	@echo "  Pickups WebSocket    ws://127.0.0.1:$(WEB_PORT)/ws/pickups/"
	@echo "  Notifications        ws://127.0.0.1:$(WEB_PORT)/ws/notifications/"
	@echo "  Flower               $(FLOWER_URL)/   ($(FLOWER_LOGIN))"
	@echo "  Docs                 make docs, then open docs/_build/html/index.html"
	@echo
	$(BIN)/honcho start -f Procfile

test: install
	$(BIN)/pytest
	$(MAKE) docs

# The suite again, on PostgreSQL (the local server, or TEST_DATABASE_URL): the unit tests in a test
# database, and each end-to-end stack in a database of its own on that server. The fault suite,
# which restarts the shared RabbitMQ and Redis for minutes, runs once, in `make test` (it passes
# with E2E_DATABASE_URL too); so does the small benchmark, which is on PostgreSQL anyway.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
test-postgres: install
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) E2E_DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest \
		--ignore=tests/faults --ignore=tests/test_bench.py

# The load benchmark of the whole pipeline on a stack of its own (docs/benchmark.rst): about a
# quarter of an hour; writes its figures and plots into docs/benchmark/. BENCH_ARGS=--quick runs
# every scenario small, in about a minute (the suite runs that once, in tests/test_bench.py).
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# The Postman collection and environment in docs/postman/, made from the OpenAPI schema.
postman: install
	mkdir -p var
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file var/schema.yaml
	npx --yes -p openapi-to-postmanv2@6.3.3 openapi2postmanv2 -s var/schema.yaml \
		-o var/postman-converted.json -p -O folderStrategy=Tags,parametersResolution=Example
	$(BIN)/python docs/postman/build_collection.py var/postman-converted.json docs/postman

# The diagrams are drawn by Graphviz's dot, locally (Debian: apt-get install graphviz).
docs: install
	@command -v dot >/dev/null || { echo "make docs needs Graphviz (dot): apt-get install graphviz" >&2; exit 1; }
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf docs/_build db.sqlite3 db.sqlite3-wal db.sqlite3-shm
