"""The external file upload flow of the fake Slack (files.getUploadURLExternal, then the
bytes POSTed to the upload URL by the handler, then files.completeUploadExternal) and
files.info; registered in ``methods.METHODS`` on import."""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

from tests.fakes.slack.methods import _required, method
from tests.fakes.slack.model import Message, SlackError, Upload

if TYPE_CHECKING:
    from tests.fakes.slack.store import FakeSlackApi


def _file_json(api: FakeSlackApi, f: Upload) -> dict[str, Any]:
    ext = f.filename.rsplit(".", 1)[-1].lower() if "." in f.filename else "binary"
    mimetypes = {
        "png": "image/png",
        "txt": "text/plain",
        "csv": "text/csv",
        "json": "application/json",
    }
    out: dict[str, Any] = {
        "id": f.file_id,
        "created": f.created,
        "timestamp": f.created,
        "name": f.filename,
        "title": f.title or f.filename,
        "mimetype": mimetypes.get(ext, "application/octet-stream"),
        "filetype": ext,
        "user": api.bot_user_id,
        "size": f.length,
        "is_external": False,
        "url_private": f"{api.url}/files-pri/{api.team_id}-{f.file_id}/{f.filename}",
        "permalink": f"https://{api.team_domain}.slack.com/files/{api.bot_user_id}/{f.file_id}/{f.filename}",
        "channels": [f.channel] if f.channel else [],
    }
    if f.alt_txt:
        out["alt_txt"] = f.alt_txt
    return out


@method("files.getUploadURLExternal")
def files_get_upload_url_external(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    filename = _required(p, "filename")
    try:
        length = int(_required(p, "length"))
    except ValueError:
        raise SlackError("invalid_arguments") from None
    file_id = api._next_id("F")
    api.files[file_id] = Upload(
        file_id,
        filename,
        length,
        alt_txt=p.get("alt_txt"),
        snippet_type=p.get("snippet_type"),
        created=int(time.time()),
    )
    return {"upload_url": f"{api.url}/upload/{file_id}", "file_id": file_id}


@method("files.completeUploadExternal")
def files_complete_upload_external(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    items = p.get("files")
    if not isinstance(items, list) or not items:
        raise SlackError("invalid_arguments")
    channel = p.get("channel_id") or (
        str(p["channels"]).split(",")[0] if p.get("channels") else None
    )
    if channel:
        api._postable(str(channel))
    thread_ts = p.get("thread_ts") or None
    uploads: list[Upload] = []
    for item in items:
        f = api.files.get(str(item.get("id"))) if isinstance(item, dict) else None
        if f is None or f.content is None or f.completed:
            raise SlackError("file_not_found")
        uploads.append(f)
    message_ts = None
    if channel:
        comment = p.get("initial_comment")
        message = Message(
            str(channel),
            api._next_ts(),
            None if comment is None else str(comment),
            None,
            thread_ts=None if thread_ts is None else str(thread_ts),
            user=api.bot_user_id,
            files=[f.file_id for f in uploads],
            params=copy.deepcopy(p),
        )
        api._messages[(message.channel, message.ts)] = message
        message_ts = message.ts
    for item, f in zip(items, uploads, strict=True):
        f.title = item.get("title") or f.filename
        f.channel = None if not channel else str(channel)
        f.thread_ts = None if thread_ts is None else str(thread_ts)
        f.initial_comment = p.get("initial_comment")
        f.message_ts = message_ts
        f.completed = True
    return {"files": [_file_json(api, f) for f in uploads]}


@method("files.info")
def files_info(api: FakeSlackApi, p: dict[str, Any]) -> dict[str, Any]:
    f = api.files.get(_required(p, "file", "file_not_found"))
    if f is None or not f.completed:
        raise SlackError("file_not_found")
    return {"file": _file_json(api, f), "comments": [], "response_metadata": {"next_cursor": ""}}
