"""Past days on Telegram: /preview, and the preview that follows /subscribe's confirmation, each
the backtest's picture (BTC over the period, alert marks, the driver strip) with its sentence as
the caption. /why <date> is /why's (bot.telegram.bot)."""

from __future__ import annotations

from telegram import Message, Update
from telegram.constants import ParseMode

from bot.actions import Preview, PreviewUnavailable
from bot.commands import Replies
from bot.store import Subscription
from bot.telegram.chat import (
    CAPTION_LIMIT,
    Context,
    Handlers,
    arguments,
    fit,
    message_of,
    reply,
    target,
)

PREVIEW_FILE = "whydown-preview.png"


class PastCommands(Handlers):
    """/preview, and the preview after /subscribe."""

    async def preview(self, update: Update, context: Context) -> None:
        """/preview [min_drivers] [days]: how often this chat would have been alerted."""
        message = message_of(update)
        minimum, days = arguments(context.args, "preview", 2)
        settled = self.actions.preview_settings(target(message), minimum, days)
        await send_preview(message, self.replies, await self.actions.preview(*settled))

    async def after_subscribe(self, message: Message, sub: Subscription) -> None:
        """The preview for a new subscription, or why there is none (nothing when previews are
        off); sent after the confirmation, so a slow reconstruction never delays it, and updates
        are handled concurrently, so other chats are answered meanwhile."""
        after = await self.actions.preview_after_subscribe(sub)
        if isinstance(after, PreviewUnavailable):
            await reply(message, after.reply(self.replies))
        elif after is not None:
            await send_preview(message, self.replies, after)


async def send_preview(message: Message, replies: Replies, preview: Preview) -> None:
    """The backtest's picture, its sentence as the caption."""
    await message.reply_photo(
        preview.png,
        caption=fit(replies.preview(preview.backtest), CAPTION_LIMIT),
        parse_mode=ParseMode.HTML,
        filename=PREVIEW_FILE,
    )
