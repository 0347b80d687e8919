# Shorthands for the scripts, which are the real commands (a fresh machine may lack make).
.PHONY: setup run test bench lint
setup:
	bash scripts/setup.sh
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
bench: setup
	.venv/bin/firewatch bench ingest --json
	.venv/bin/firewatch bench alerting --json
	.venv/bin/firewatch bench api --json
lint: setup
	.venv/bin/ruff check .
