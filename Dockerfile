# Sinkhole's images. Two targets:
#
#   web (default)  the Django app: gunicorn, and the CPU Celery workers (ingest, default queues)
#   training       the same plus the ML stack (torch, transformers, trl, peft) for GPU workers
#                  on the `training` queue
#
#   docker build -t sinkhole .                       # web
#   docker build -t sinkhole-training --target training .
#
# docker-compose.yml builds and runs both. The web image never installs torch: the web process
# stays light (DESIGN.md, principle 6).

FROM python:3.11-slim AS web

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SINKHOLE_DATA_DIR=/data

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin sinkhole \
    && mkdir -p /app /data \
    && chown sinkhole:sinkhole /data

WORKDIR /app
COPY pyproject.toml README.md manage.py ./
COPY config ./config
COPY apps ./apps
COPY trainer ./trainer
COPY frontend ./frontend
# Editable, so that BASE_DIR (templates, static files) is /app and not site-packages.
RUN pip install -e .

USER sinkhole
VOLUME ["/data"]
EXPOSE 8000
# Static files (admin, API docs, the UI) are served by WhiteNoise from the installed packages:
# no collectstatic step. Bind address and sizes: GUNICORN_CMD_ARGS="--workers 4 --threads 4".
CMD ["gunicorn", "--config", "python:config.gunicorn", "--bind", "0.0.0.0:8000", "config.wsgi:application"]


FROM web AS training

USER root
# torch is pinned: an unpinned torch follows whatever is newest. PyPI's Linux wheel of torch is
# the CUDA build, which is what a GPU worker needs; for a CPU-only image (demos, tests) build
# with --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"; \
    else \
        pip install "torch==${TORCH_VERSION}"; \
    fi \
    && pip install -e ".[ml]"
USER sinkhole
# One task per child process and nothing prefetched: a training run holds the GPU for hours.
CMD ["celery", "-A", "config", "worker", "-Q", "training", "--concurrency", "1", \
     "--prefetch-multiplier", "1", "--max-tasks-per-child", "1", "--loglevel", "INFO"]
