# One image for both nattery services (bridge, app); the compose file picks the command.
# Balena builds it for the fleet's architecture (Raspberry Pi: aarch64; generic-amd64: x86_64).
# The base image is a multi-arch manifest and no step names an architecture, so the same file
# builds both: docker buildx build --platform linux/arm64,linux/amd64 .

# Stage 1: build the wheel (the package with its data: default.yaml, register maps, price model).
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY device ./device
COPY cloud_sync ./cloud_sync
COPY common ./common
COPY fleet ./fleet
RUN pip wheel --no-deps --wheel-dir /wheels .

# Stage 2: install the wheel, not the source tree; no build tools, no test tools, no amqtt (the
# device has its own broker service).
FROM python:3.11-slim-bookworm
# One BLAS thread: the forecast's daily refit is 10-30x slower when OpenBLAS threads fight for
# the Pi's cores with the bridge (see device/cli.py, which sets the same default).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OPENBLAS_NUM_THREADS=1
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels && useradd --system --no-create-home nattery

# /data is the shared named volume: nattery.db, nattery.yaml (installer), credentials.
VOLUME /data
CMD ["nattery", "--help"]
