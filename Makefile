# Every target sets up what it needs; `make test` and `make demo` work on a fresh clone.
# The Lambda runtime in template.yaml: development uses the same Python where the machine has it
# (pyenv's or on PATH), else 3.11 with a note; `sam build` needs it in any case.
LAMBDA_PYTHON := 3.12
PYTHON ?= $(shell scripts/find-python $(LAMBDA_PYTHON) 3.11)
VENV   := .venv
BIN    := $(VENV)/bin
# One stamp per interpreter version: another Python makes a new venv.
STAMP  := $(VENV)/.installed-$(lastword $(subst python, ,$(notdir $(PYTHON))))

# SAM CLI pins its own boto3, cfn-lint and click, so it lives in a venv of its own.
# `sam validate --lint` runs cfn-lint, pinned here within SAM CLI's range.
SAM_CLI_VERSION  := 1.170.0
CFN_LINT_VERSION := 1.58.0
SAM_VENV  := .venv-sam
SAM       := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)-cfn-lint-$(CFN_LINT_VERSION)
# Validation and builds need a region but no credentials.
SAM_ENV   := SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1

# checkov, the security scanner for template.yaml; its own venv keeps its pins apart.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV    := .venv-checkov
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

# Node tools (asl-validator), pinned by .tools/package-lock.json.
NODE_DIR   := .tools
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.PHONY: setup test unit integration e2e lint typecheck demo bench bench-imports clean \
	sam-tools sam-validate sam-build node-tools checkov-tools checkov browser-tools

# The steps of `make test` run in the order they are listed, also under -j.
.NOTPARALLEL:

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "no Python 3.12 or 3.11 found" >&2; exit 1; }
	if [ ! -e $(STAMP) ] && ls $(VENV)/.installed* >/dev/null 2>&1; then rm -rf $(VENV); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck sam-validate checkov sam-build $(NODE_STAMP) browser-tools
	$(BIN)/pytest -q

# One layer of the suite at a time (markers set by tests/conftest.py from each test's folder).
unit: $(STAMP)
	$(BIN)/pytest -q -m unit

integration: $(STAMP) $(NODE_STAMP) browser-tools
	$(BIN)/pytest -q -m integration

e2e: $(STAMP)
	$(BIN)/pytest -q -m e2e

# make demo PROVIDER=bedrock trains with the Amazon Bedrock stand-in instead of OpenAI's emulator.
demo: $(STAMP)
	$(BIN)/python -m sft_local.demo $(if $(PROVIDER),--provider $(PROVIDER))

bench: $(STAMP)
	$(BIN)/python benchmarks/validate_bench.py

bench-imports: $(STAMP)
	$(BIN)/python benchmarks/import_times.py

# ------------------------------------------------------------------ AWS SAM

$(SAM_STAMP):
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade pip==26.3
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==$(SAM_CLI_VERSION) cfn-lint==$(CFN_LINT_VERSION)
	touch $(SAM_STAMP)

sam-tools: $(SAM_STAMP)

sam-validate: $(SAM_STAMP)
	$(SAM_ENV) $(SAM) validate --lint --region us-east-1 --template-file template.yaml

# Uses samconfig.toml's build settings (cached, parallel).
sam-build: $(SAM_STAMP)
	@python="$$(scripts/find-python $(LAMBDA_PYTHON))" || exit 1; \
	echo "sam build with $$python"; \
	PATH="$$(dirname "$$python"):$$PATH" $(SAM_ENV) $(SAM) build --template-file template.yaml

# ------------------------------------------------------------------ checkov

$(CHECKOV_STAMP):
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade pip==26.3
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

checkov-tools: $(CHECKOV_STAMP)

# Fails on any finding that is neither fixed nor skipped, with its reason, in the resource's
# Metadata (checkov: skip:). Offline: --skip-download fetches no guidelines.
checkov: $(CHECKOV_STAMP)
	$(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation \
		--compact --quiet --skip-download

# ------------------------------------------------------------------ Node tools

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

node-tools: $(NODE_STAMP)

# ------------------------------------------------------------------ Browser

# The model card test opens its page in headless Chromium: Debian's package, installed when
# missing (as root, or through sudo).
browser-tools:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "chromium not found: installing Debian's chromium"; \
		sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"; \
		$$sudo apt-get update -qq && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	}

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) $(NODE_DIR)/node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache
