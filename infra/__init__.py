"""The img2img CDK app: one isolated stack per environment (`cdk deploy -c env=<name>`)."""
