"""DynamoDB backend (``dynamodb://``) and its CloudFormation template generator."""

from asyncdb.backends.dynamodb.cloudformation import cloudformation_template

__all__ = ["cloudformation_template"]
