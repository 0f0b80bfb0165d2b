"""canary-deploy: safe, fast canary releases on ECS Fargate + ALB, and locally."""

__version__ = "0.1.0"
