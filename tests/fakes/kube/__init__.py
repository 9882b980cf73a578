"""The fake Kubernetes API server, split by concept; import it from ``tests.fakes.kube_api``.

``model`` holds constants, recorded requests and Status errors; ``paths`` the REST paths and
routing; ``patching`` JSON Patch, merge patch and label selectors; ``rollouts`` the simulated
controllers (rollouts, synthesized pods, service-account tokens); ``writes`` create, replace,
patch and delete; ``store`` the fake's state (``FakeKubeApi``) and reads; ``handler`` the HTTP
handler.
"""
