# The worker image of docker-compose.yml: leverloop with its dbt project and GX suites.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH \
    LEVERLOOP_PROJECT_DIR=/app PREFECT_SERVER_ANALYTICS_ENABLED=false
RUN pip install --no-cache-dir "uv>=0.9,<1"
WORKDIR /app
COPY . /app
RUN uv sync --no-dev
CMD ["leverloop", "--help"]
