"""The fake OCI API server, split by concept; import it from ``tests.fakes.oci_api``.

``model`` holds constants, recorded requests, replies and OCI error bodies; ``store`` the fake's
state (``FakeOciApi``: resources, secrets, work requests, retry tokens, faults); ``writes`` the
write operations (network security groups and their rules, Container Engine updates, Vault
secrets); ``handler`` the HTTP handler (reads, lists, pages, secret bundles).
"""
