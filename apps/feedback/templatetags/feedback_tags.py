"""Template filters of the feedback app."""

from __future__ import annotations

from django import template

from apps.feedback.models import Event
from apps.feedback.selectors import event_unreadable

register = template.Library()


@register.filter
def unreadable(event: Event) -> list[str]:
    """What of EVENT no reader can carry (see selectors.event_unreadable); empty when sound."""
    return event_unreadable(event)
