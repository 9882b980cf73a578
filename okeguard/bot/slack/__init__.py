"""The Slack bot: a Bolt app (slash commands, buttons, modals), its messages, the digest and the
scheduler. Front-door code only: every rule lives in the service functions it calls."""
