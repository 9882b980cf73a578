"""A fake Slack Web API: a real HTTP server on 127.0.0.1 that the real ``slack_sdk.WebClient``
talks to: ``WebClient(token=api.bot_token, base_url=api.base_url)`` (``{url}/api/``).

Every method is served at ``/api/{method}`` by POST or GET, its parameters taken from the query
string and a JSON, form-encoded or multipart body (JSON-string params such as ``blocks``,
``view`` and ``files`` decoded, as Slack does). A token is required, as ``Authorization: Bearer
…`` or a ``token`` field: none → ``not_authed``, a wrong one → ``invalid_auth``. Errors are
``{"ok": false, "error": …}`` with HTTP 200, as Slack answers them. Served::

    auth.test                    url, team, user, team_id, user_id, bot_id
    chat.postMessage             channel, ts (unique, increasing: "1732700000.000100"), message;
                                 no text/blocks/attachments → no_text; > 50 blocks or a block
                                 without ``type`` → invalid_blocks; blocks not a list →
                                 invalid_blocks_format; text > 40000 → msg_too_long
    chat.update                  by channel+ts → channel, ts, text, message (the stored message
                                 changes; left-out blocks are kept, ``[]`` removes them);
                                 unknown → message_not_found; not the bot's → cant_update_message
    chat.postEphemeral           message_ts
    chat.delete                  channel, ts; unknown → message_not_found
    chat.getPermalink            channel, permalink (…/archives/{channel}/p{ts}[?thread_ts=…])
    views.open / views.push      need trigger_id (missing → invalid_arguments, one passed to
                                 ``expire_trigger`` → expired_trigger_id); view (type modal,
                                 title, ≤ 100 blocks, else invalid_arguments) → view with id,
                                 hash, state, root_view_id…; a 4th push → push_limit_reached
    views.update                 by view_id or external_id (unknown → not_found); a ``hash``
                                 that is not the current one → hash_conflict; a new hash
    views.publish                user_id + a home view (one per user; hash checked likewise)
    usergroups.users.list        usergroup → users; unknown (or disabled, without
                                 include_disabled) → no_such_subteam
    usergroups.list              usergroups (users with include_users)
    users.info                   user; unknown → user_not_found
    conversations.info           channel; unknown → channel_not_found (see below)
    files.getUploadURLExternal   filename + length → upload_url ({url}/upload/{file_id}), file_id
    POST {url}/upload/{file_id}  the raw bytes (stored) → 200 "OK - {n}"; unknown → 404
    files.completeUploadExternal files ([{id, title}]; each uploaded, once, else file_not_found),
                                 channel_id/channels, initial_comment, thread_ts → files; with a
                                 channel a share message (text = initial_comment, ``files``)
    files.info                   file; unknown → file_not_found
    other methods                unknown_method

Channels are made on first use unless ``strict_channels`` (then unknown → channel_not_found);
one added with ``is_member=False`` answers posts with not_in_channel, an archived one with
is_archived. ``strict_users`` makes unknown users ``user_not_found``/``user_not_in_channel``.

Response URLs (``api.new_response_url(channel=, message_ts=, user=)``, for the payload
builders): a POSTed JSON body is recorded in ``response_urls[id].posts``; ``replace_original``
updates the bound message, ``delete_original`` deletes it, ``response_type: in_channel`` posts
a message, anything else an ephemeral to ``user``. Answers 200 ``ok``.

Faults (``method`` is an fnmatch pattern; the upload URL is method ``"upload"``, response
URLs ``"response_url"``): ``fail(method, error, status=200|500, times=1)``,
``rate_limit(method, times=1, retry_after=1)`` (429, ``Retry-After``, ``ratelimited``),
``drop(method, times)`` (the connection closes unanswered), ``delay(method, seconds)``
(``after_acting=True``: the call takes effect at once, only its answer is late),
``enforce_channel_pacing(min_interval=1.0)`` (chat.postMessage to a channel sooner than that
after its last accepted post → 429 with Retry-After), ``clear_faults()``.

Recording: every request is a ``RecordedCall`` (method, params without ``token``, headers
without ``Authorization``, arrival ``time.time()``, HTTP status, JSON answered) in
``api.requests``; ``calls(method)``, ``messages(channel)`` (the current state, updates applied,
deletions left out), ``message(channel, ts)``, ``thread(channel, ts)``, ``ephemerals(channel,
user)``, ``posts_to(channel)`` (times of accepted posts, for pacing), ``uploads`` (completed:
bytes, filename, title, channel, thread), ``files`` (all by id), ``views`` (by id, with
``history``), ``modals()``, ``home_view(user)``. Thread-safe (one lock); ts, ids and hashes are
deterministic counters.

Socket Mode (``tests.fakes.slack.socket_mode``): ``apps.connections.open`` (the app-level token
``api.app_token`` only) → ``ws://127.0.0.1:PORT/link/?ticket=…``, a WebSocket server (RFC 6455)
that greets each connection with ``hello``. ``socket_send_slash_command(text, user_id=,
channel_id=, trigger_id=)``, ``socket_send_interactive(payload)`` and ``socket_send(type,
payload)`` push envelopes and return their ids; ``socket_acks`` / ``wait_for_ack(id, timeout)``
give the client's acks (``payload``, arrival ``at``, ``latency``); ``socket_envelopes``,
``socket_connections``, ``wait_for_socket_connection()``, ``socket_ping()``, ``socket_close()``,
``socket_disconnect()``.

``sign_request`` and the ``*_body`` builders make signed Slack → app requests for the app's
HTTP mode (see ``tests.fakes.slack.signing``).
"""

from __future__ import annotations

from tests.fakes.slack.model import (
    APP_ID,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    TEAM_ID,
    Ephemeral,
    Message,
    RecordedCall,
    ResponseUrl,
    Upload,
    View,
)
from tests.fakes.slack.signing import (
    CHANNEL_ID,
    TRIGGER_ID,
    USER_ID,
    block_action_body,
    block_action_payload,
    sign_request,
    slash_command_body,
    view_submission_body,
    view_submission_payload,
)
from tests.fakes.slack.socket_mode import (
    APP_TOKEN,
    SocketAck,
    SocketConnection,
    SocketEnvelope,
    SocketModeServer,
)
from tests.fakes.slack.store import FakeSlackApi, running_fake_slack_api

__all__ = [
    "APP_ID",
    "APP_TOKEN",
    "BOT_ID",
    "BOT_TOKEN",
    "BOT_USER_ID",
    "CHANNEL_ID",
    "TEAM_ID",
    "TRIGGER_ID",
    "USER_ID",
    "Ephemeral",
    "FakeSlackApi",
    "Message",
    "RecordedCall",
    "ResponseUrl",
    "SocketAck",
    "SocketConnection",
    "SocketEnvelope",
    "SocketModeServer",
    "Upload",
    "View",
    "block_action_body",
    "block_action_payload",
    "running_fake_slack_api",
    "sign_request",
    "slash_command_body",
    "view_submission_body",
    "view_submission_payload",
]
