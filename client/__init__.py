"""img2img_client: the `img2img` command, a client for people over the img2img API.

`img2img run IMAGE --prompt TEXT --local` runs one image through local mode; `--env NAME`
finds a deployed stack by its CloudFormation outputs. See `img2img --help`."""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"
