"""HTTP surfaces (aiohttp). Translates requests to service calls and errors to envelopes."""
