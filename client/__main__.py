"""`python -m img2img_client` is the `img2img` command."""

from __future__ import annotations

import sys

from img2img_client.cli import main

if __name__ == "__main__":
    sys.exit(main())
