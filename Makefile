.PHONY: demo test test-fast lint bench docs

demo:            ## the closed loop on the embedded default
	uv run leverloop demo

test:            ## the full suite (what CI runs)
	uv run pytest

test-fast:       ## unit + integration, without the end-to-end runs
	uv run pytest -m "not e2e"

lint:
	uv run ruff check . && uv run ruff format --check .

bench:           ## every benchmark in benchmarks/ (prints its figures)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; uv run python $$b || exit 1; done

docs:            ## dbt docs (catalog of the marts) into .leverloop/dbt/target
	uv run leverloop dbt docs generate
