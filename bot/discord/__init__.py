"""The Discord front-end: the bot (slash commands and lifecycle), its views, and the alert notifier.

Modules here import the discord.py library as `import discord`: imports are absolute, and `bot/` is
never on sys.path, so this package (`bot.discord`) does not shadow it.
"""
