"""Preference pairs: the three dataset layouts loaded into one record, and chats rendered the same way every day."""
