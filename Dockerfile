# syntax=docker/dockerfile:1
# 不动产一网通办 API image: `python -m api serve` (default), `python -m api worker`, `python -m api migrate`.
#
#   docker build -t estate-api .
#   docker run --rm estate-api python -m api migrate            # release step, with the env below
#   docker run -p 8000:8000 --env-file production.env -v /srv/keys:/run/secrets:ro estate-api
#   docker run --env-file production.env estate-api python -m api worker
#
# The image defaults to the production profile, which refuses to start until it has:
#   DATABASE_URL=postgres://estate:...@db:5432/estate      REDIS_URL=redis://redis:6379/0
#   ESTATE_SECRET_KEY=<random, 32+ bytes>                   ESTATE_PII_KEY=<base64 of 32 random bytes>
#   ESTATE_BLIND_INDEX_KEY=<random, 32+ bytes>              ESTATE_JWT_PRIVATE_KEY_FILE=/run/secrets/jwt-ed25519.pem
#   ESTATE_CIVIL_REGISTRY_URL, ESTATE_TAX_URL, ESTATE_ELICENSE_URL, ESTATE_APPOINTMENT_CENTRE_URL,
#   ESTATE_SMS_GATEWAY_URL, ESTATE_SMS_GATEWAY_API_KEY (utilities and banks: config/*.toml)
# Optional: ESTATE_WORKERS (Sanic workers per container), ESTATE_PUBLIC_BASE_URL, ESTATE_LOG_LEVEL.
# See README.md "Production settings" and config/settings.py.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first (their own layer, rebuilt only when pyproject.toml or the lock changes).
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c requirements.lock -r /tmp/requirements.txt
COPY api ./api
COPY services ./services
COPY demo ./demo
COPY integrations ./integrations
COPY certificates ./certificates
COPY notifications ./notifications
COPY config ./config
COPY standards ./standards
RUN pip install -c requirements.lock . && python -m compileall -q /opt/venv/lib

FROM python:3.11-slim
# TrueType CJK fonts for certificate PDFs: WenQuanYi Zen Hei (common characters) and
# HanaMin A/B (CJK extensions A and B, e.g. rare characters in names).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-zenhei fonts-hanazono \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system estate && useradd --system --gid estate --home-dir /app --shell /usr/sbin/nologin estate
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
RUN mkdir -p /app/var && chown estate:estate /app/var
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ESTATE_PROFILE=production \
    ESTATE_SIMULATORS_IN_PROCESS=false \
    ESTATE_HOST=0.0.0.0 \
    ESTATE_PORT=8000 \
    ESTATE_LOG_JSON=true
USER estate
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${ESTATE_PORT:-8000}/health/live', timeout=2)" || exit 1
CMD ["python", "-m", "api", "serve"]
