"""The Telegram front-end: the bot (handlers and lifecycle), chat facts, and the alert notifier."""
