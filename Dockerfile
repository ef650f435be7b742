# One image for both nattery services (bridge, app); the compose file picks the command.
# Balena builds it for the fleet's architecture (Raspberry Pi: aarch64).
FROM python:3.11-slim-bookworm

# One BLAS thread: the forecast's daily refit is 10-30x slower when OpenBLAS threads fight for
# the Pi's cores with the bridge (see device/cli.py, which sets the same default).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 OPENBLAS_NUM_THREADS=1
WORKDIR /usr/src/nattery

# The same install path as the quick start, without test tools.
COPY pyproject.toml README.md ./
COPY device ./device
COPY cloud_sync ./cloud_sync
COPY common ./common
RUN pip install -e . && useradd --system --no-create-home nattery

# /data is the shared named volume: nattery.db, nattery.yaml (installer), credentials.
VOLUME /data
CMD ["nattery", "--help"]
