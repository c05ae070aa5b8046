"""FastChat: follow vote logs as they grow (`services.py`; `manage.py follow_fastchat`)."""
