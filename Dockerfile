# One image for every KeyLM service; docker-compose picks the app with APP_MODULE.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# The web client's front-end libraries come from the npm registry at build time.
COPY web/ web/
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
    && npm ci --prefix web --omit=dev && node web/copy-vendor.js \
    && apt-get purge -y nodejs npm && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* web/node_modules

COPY . .
RUN useradd --system --uid 10001 keylm && mkdir -p /app/var && chown keylm /app/var
USER keylm

ENV APP_MODULE=gateway.app:create_app() PORT=8000
EXPOSE 8000
CMD ["sh", "-c", "exec gunicorn -c runner/gunicorn_conf.py -b 0.0.0.0:${PORT} \"${APP_MODULE}\""]
