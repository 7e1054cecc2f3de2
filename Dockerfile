# Production image: gunicorn (web) and Celery (worker) share it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
# Runtime packages only: the "Development and tests" section closes
# requirements.txt (pytest, playwright, locust, ruff, mypy stay out of the
# image). The CPU build of torch; the default index would pull CUDA.
RUN sed '/^# Development and tests/,$d' requirements.txt > /tmp/runtime.txt && \
    pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu \
        -r /tmp/runtime.txt && rm /tmp/runtime.txt
COPY . .
RUN DJANGO_SECRET_KEY=collectstatic DATABASE_URL=postgres://unused/unused \
        python manage.py collectstatic --noinput

RUN useradd --create-home --uid 1000 docsearch && mkdir -p /app/var && \
    chown -R docsearch /app/var
USER docsearch
EXPOSE 8000
# Long Korean queries, URL-encoded, exceed gunicorn's default 4 KB request line.
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60", \
     "--limit-request-line", "16384"]
