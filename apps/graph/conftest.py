"""The graph service's tests run in its own environment (`.venv-graph`; `make test` runs
both suites): another environment, which cannot import circuit-tracer, skips this folder."""

import importlib.util

collect_ignore_glob = [] if importlib.util.find_spec("circuit_tracer") else ["*"]
