# Hardening: the long runs and the hardening figures. `make test` runs the bad-input corpus,
# the fault tests, the short fuzz and the property tests; these take minutes and run apart.

.PHONY: stress bench-startup bench-load

# How many examples `make stress` asks for: set here only (the tests' own defaults are short).
STRESS_FUZZ_EXAMPLES := 400
STRESS_PROPERTY_EXAMPLES := 3000

## stress: 200 images dropped at once under faults, a long schema fuzz, many more property examples
stress: install
	IMG2IMG_STRESS=1 IMG2IMG_FUZZ_EXAMPLES=$(STRESS_FUZZ_EXAMPLES) IMG2IMG_FUZZ_RANDOM=1 \
		IMG2IMG_PROPERTY_EXAMPLES=$(STRESS_PROPERTY_EXAMPLES) \
		$(PY) -m pytest -p no:cacheprovider tests/stress tests/local/test_fuzz.py tests/unit/test_properties.py

## bench-startup: time to first answer of each function from the read-only asset twin, next to `import boto3` + a client; the asset's size
bench-startup: install
	$(PY) -m tools.bench_startup

## bench-load: local-mode throughput for 100 images dropped at once, emulator at 0 ms and 2000 ms
bench-load: install
	$(PY) -m tools.bench_load --images 100
