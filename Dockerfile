# One image for every service: `python -m services.<name>` picks the service (see helm/tradebot).
# Built in CI with network access; the locked dependencies make the build reproducible.
FROM python:3.11-slim AS build
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
# Dependencies first (a layer that changes only with the lock), then the project itself.
RUN uv sync --frozen --no-dev --no-install-project
COPY proto ./proto
COPY scripts ./scripts
COPY services ./services
RUN mkdir -p gen && uv sync --frozen --no-dev && .venv/bin/python scripts/gen_proto.py

FROM python:3.11-slim
RUN groupadd --gid 10001 tradebot && useradd --uid 10001 --gid 10001 --no-create-home tradebot
WORKDIR /app
COPY --from=build /app /app
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 GRPC_HOST=0.0.0.0
USER 10001
# The chart sets the command per component, e.g. ["python", "-m", "services.execution"].
CMD ["python", "-m", "services.tenants"]
