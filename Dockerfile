# The sample app as a container image for ECR (the seed's fastapi-repo image).
#   docker build -t fastapi-repo:v1 --build-arg APP_VERSION=v1 .
#   docker build -t fastapi-repo:v2 --build-arg APP_VERSION=v2 .
FROM python:3.11-slim

ARG APP_VERSION=v1
ENV APP_VERSION=${APP_VERSION} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 app

USER app
# Matches CONTAINER_PORT (8000) in the task definition; the ALB health check hits GET /.
EXPOSE 8000
CMD ["sh", "-c", "exec python -m canary_deploy.sample_app --host 0.0.0.0 --port 8000 --version \"$APP_VERSION\""]
