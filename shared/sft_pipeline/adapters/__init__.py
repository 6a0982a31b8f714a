"""Adapters: one module per outside system (S3, DynamoDB, SNS, the providers)."""
