# The img2img command and the page to try the service (client/, handlers/web/, tests/client/).

.PHONY: browser client-test

CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

## browser: install Debian's chromium and chromium-driver for the page's browser test (needs root)
browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then \
	  echo "browser: $$($(CHROMIUM) --version 2>/dev/null) and $(CHROMEDRIVER) are installed"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else \
	  echo "browser: the page's browser test needs Debian's Chromium; as root, run:" >&2; \
	  echo "  apt-get update && apt-get install -y chromium chromium-driver" >&2; \
	  exit 1; \
	fi

## client-test: the img2img command and the page, end to end against local mode (and the browser test)
client-test: install
	$(PY) -m pytest tests/client
