"""The audit database: findings over time, exceptions, remediation requests, the hash chain."""
