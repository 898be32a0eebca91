# Herald: `make run` to try it, `make test` to check it. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
KAFKA := deploy/kafka/kafka.sh
CLUSTER := deploy/kafka/cluster.sh
HELM := deploy/tools/helm.sh
STAMP := $(VENV)/.installed
# pytest workers of `make test`, each with its own broker: one per core of a 2-core machine.
TEST_WORKERS ?= 2

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(STAMP) ## create or update the virtual environment .venv/

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

system-deps: ## install missing Debian packages (Java 17, Maven) when run as root
	@bash deploy/system-deps.sh

test-deps: system-deps ## and what the tests drive: Varnish, nginx, Chromium, Debian's python3 venv (for the wheel)
	@bash deploy/system-deps.sh varnishd:varnish nginx:nginx chromium:chromium \
		/usr/lib/python3.11/ensurepip/__init__.py:python3.11-venv

kafka-fetch: system-deps ## download the Kafka jars from Maven Central (once)
	@$(KAFKA) fetch

kafka-up: kafka-fetch ## start the local single-node broker on 127.0.0.1:9092
	@$(KAFKA) up

kafka-down: ## stop the local broker
	@$(KAFKA) down

kafka-cluster-up: kafka-fetch ## start three local nodes (brokers 127.0.0.1:19092,19094,19096)
	@$(CLUSTER) up

kafka-cluster-down: ## stop the three local nodes
	@$(CLUSTER) down

varnish-up: ## Varnish on 127.0.0.1:6081 caching in front of PROXY_ORIGINS (default 127.0.0.1:8080)
	@bash deploy/system-deps.sh varnishd:varnish
	@deploy/varnish/varnish.sh up

varnish-down: ## stop that Varnish
	@deploy/varnish/varnish.sh down

nginx-up: ## nginx on https://127.0.0.1:8443 (TLS, HTTP/2) in front of PROXY_ORIGINS
	@bash deploy/system-deps.sh nginx:nginx
	@deploy/nginx/nginx.sh up

nginx-down: ## stop that nginx
	@deploy/nginx/nginx.sh down

run: install kafka-fetch ## local Kafka (unless HERALD_KAFKA_BOOTSTRAP is set) and Herald on HERALD_BIND
	@if [ -z "$$HERALD_KAFKA_BOOTSTRAP" ]; then $(KAFKA) up; fi
	@echo "Herald: http://$${HERALD_BIND:-127.0.0.1:8080}/ (Ctrl-C stops it; 'make kafka-down' stops Kafka)"
	@echo "LOCAL DEVELOPMENT: every topic is readable and anyone may publish (HERALD_PUBLIC_TOPICS, HERALD_PUBLISH_OPEN); never run a deployment like this"
	HERALD_PUBLIC_TOPICS=$${HERALD_PUBLIC_TOPICS-.*} HERALD_PUBLISH_OPEN=$${HERALD_PUBLISH_OPEN:-true} \
	HERALD_TOPIC_CREATIONS_PER_HOUR=$${HERALD_TOPIC_CREATIONS_PER_HOUR:-1000} $(BIN)/herald serve

ready: ## wait until Herald on HERALD_BIND answers ready (after `make run &`)
	@bash deploy/wait-ready.sh

lint: install ## ruff and mypy
	$(BIN)/ruff check service tests
	$(BIN)/ruff format --check service tests
	$(BIN)/mypy

helm: ## build helm from the Go module proxy (once; cached in deploy/tools/.cache/)
	@$(HELM) >/dev/null

test: install kafka-fetch test-deps helm lint ## the whole suite: lint, unit, integration (starts and stops its own Kafka)
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadscope

fuzz: install kafka-fetch ## a long fuzz run (FUZZ_EXAMPLES examples per property, default 2000)
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-2000} $(BIN)/pytest -q -p no:cacheprovider -o timeout=0 tests/fuzz

bench: install kafka-fetch ## the benchmarks (tests/load): a table, and results/bench-<time>/ with report.md, results.json, latency.png
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/python -m tests.load $(BENCH_ARGS)

.PHONY: bench fuzz helm help install ready system-deps test-deps kafka-fetch kafka-up kafka-down kafka-cluster-up kafka-cluster-down varnish-up varnish-down nginx-up nginx-down run lint test
