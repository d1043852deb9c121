"""Stage 2, preference pairs: loading the three dataset layouts and rendering chats the same way every day."""
