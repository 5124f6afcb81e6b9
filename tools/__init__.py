"""Developer tools, never packaged or deployed: `make demo` (tools.demo), `make bench`
(tools.bench, tools.bench_startup, tools.bench_load) and the demo's sample picture. Run from the
repository's root, e.g. `python -m tools.demo`."""
