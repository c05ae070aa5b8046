from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from apps.feedback.models import Comparison, Event, Interaction, Rating


class ReadOnlyAdmin(admin.ModelAdmin):
    """The raw log is append-only and derived rows are rebuilt, not edited: look, don't touch."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["id", "source", "type", "status", "model", "received_at"]
    list_filter = ["type", "status", "source"]
    search_fields = ["client_id", "model", "checkpoint"]
    list_select_related = ["source"]
    show_full_result_count = False
    raw_id_fields = ["supersedes"]  # a link to one event, not a menu of the whole log


@admin.register(Interaction)
class InteractionAdmin(ReadOnlyAdmin):
    list_display = ["event", "position", "model", "checkpoint", "edited"]
    raw_id_fields = ["event"]


@admin.register(Rating)
class RatingAdmin(ReadOnlyAdmin):
    list_display = ["event", "model", "checkpoint", "value", "score", "reason", "created_at"]
    list_filter = ["value"]
    raw_id_fields = ["event", "interaction"]


@admin.register(Comparison)
class ComparisonAdmin(ReadOnlyAdmin):
    list_display = ["event", "model_a", "model_b", "outcome", "created_at"]
    list_filter = ["outcome"]
    raw_id_fields = ["event", "interaction_a", "interaction_b"]
