FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    GATEWAY_DATA_DIR=/data GATEWAY_CONFIG=/app/config.toml

WORKDIR /app
COPY pyproject.toml README.md config.toml ./
COPY gateway ./gateway
COPY providers ./providers
COPY clients/python/gateway_client ./clients/python/gateway_client
RUN pip install --no-cache-dir . \
 && useradd --system --uid 10001 --home-dir /data gateway \
 && mkdir -p /data /results && chown gateway /data /results

USER gateway
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
