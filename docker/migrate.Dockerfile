# One-shot: apply database migrations, then exit.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY packages/core packages/core
COPY packages/db packages/db
RUN pip install packages/core packages/db
CMD ["interpedia", "db", "migrate"]
