"""The fake Slack Web API, split by concept; import it from ``tests.fakes.slack_api``.

``model`` holds identities, the recorded call, the stored messages/ephemerals/views/uploads and
the faults; ``methods`` the Web API methods (``files`` the upload flow); ``handler`` the HTTP handler (parsing, auth,
faults, rate limits, upload and response URLs); ``store`` the fake's state (``FakeSlackApi``);
``signing`` signed requests and interactivity payloads for tests of the app's HTTP mode.
"""
