"""The dashboard and the push API that ``mxdoctor watch`` serves (ASGI: Starlette on uvicorn)."""
