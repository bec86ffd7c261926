# The AccessHive image: one image for web (gunicorn), worker and beat (Celery); see docker-compose.yml.
FROM python:3.11-slim

# PYTHONPATH: the source tree in /app, not the installed copy, is what runs, so that settings
# find templates/ and static/ beside it.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    ACCESSHIVE_VAR_DIR=/app/var

RUN groupadd --system --gid 10001 accesshive \
    && useradd --system --uid 10001 --gid accesshive --home-dir /app --no-create-home accesshive

WORKDIR /app
COPY . .

# The throwaway key only lets settings load for collectstatic; the real one comes at run time.
RUN pip install . \
    && DJANGO_SECRET_KEY=collectstatic-only CELERY_BROKER_URL=memory:// \
       python manage.py collectstatic --noinput \
    && mkdir -p /app/var /app/beat \
    && chown -R accesshive:accesshive /app/var /app/beat

USER accesshive
EXPOSE 8000
CMD ["gunicorn", "accesshive.wsgi", "--bind=0.0.0.0:8000", "--access-logfile=-"]
