"""The AWS target: CloudFormation stack, ELBv2 listener weights, ECS services, CloudWatch."""
