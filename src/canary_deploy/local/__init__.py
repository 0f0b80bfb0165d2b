"""The local target: ECS-like services of task processes behind the local balancer, in a daemon."""
