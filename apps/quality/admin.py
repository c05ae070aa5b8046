"""Admin: verdicts, labels and reputations to look at. Curators change a verdict with the override
action (which records who and why, and makes a training label), never by editing the row."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.quality.models import (
    CuratorLabel,
    RaterReputation,
    RequalifyJob,
    SpamClassifier,
    Verdict,
    VerdictOverride,
)
from apps.quality.services import verdict_override


class LookOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _override(status: str, label: str):  # type: ignore[no-untyped-def]
    def action(
        modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Verdict]
    ) -> None:
        done = 0
        for verdict in queryset.filter(is_current=True):
            try:
                verdict_override(
                    event_id=verdict.event_id,
                    status=status,
                    curator=request.user,
                    note="from the admin",
                )
            except ValidationError as exc:
                modeladmin.message_user(request, "; ".join(exc.messages), messages.WARNING)
                continue
            done += 1
        modeladmin.message_user(request, f"{done} event(s) set to {status}.", messages.SUCCESS)

    action.__name__ = f"override_{status}"
    return admin.action(description=label)(action)


@admin.register(Verdict)
class VerdictAdmin(LookOnly):
    list_display = [
        "event",
        "status",
        "score",
        "trust_weight",
        "codes",
        "origin",
        "is_current",
        "created_at",
    ]
    list_filter = ["status", "origin", "is_current"]
    raw_id_fields = ["event", "curator"]
    list_select_related = ["event"]
    show_full_result_count = False
    actions = [
        _override("accepted", "Accept (overrule the filters; the text becomes a ham label)"),
        _override("quarantined", "Quarantine (the text becomes a spam label)"),
        _override("rejected", "Reject (the text becomes a spam label)"),
    ]

    @admin.display(description="reasons")
    def codes(self, obj: Verdict) -> str:
        return ", ".join(obj.reason_codes)


@admin.register(VerdictOverride)
class VerdictOverrideAdmin(LookOnly):
    list_display = ["event", "status", "curator", "note", "created_at"]
    raw_id_fields = ["event", "overruled", "verdict", "curator"]


@admin.register(CuratorLabel)
class CuratorLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "label", "origin", "short_text", "curator", "created_at"]
    list_filter = ["label", "origin"]
    search_fields = ["text"]
    raw_id_fields = ["event", "override", "curator"]

    @admin.display(description="text")
    def short_text(self, obj: CuratorLabel) -> str:
        return obj.text[:80]


@admin.register(RaterReputation)
class RaterReputationAdmin(LookOnly):
    list_display = [
        "rater_hash",
        "source",
        "events",
        "flagged",
        "votes",
        "outlier",
        "trust",
        "updated_at",
    ]
    list_filter = ["outlier", "source"]
    search_fields = ["rater_hash"]


@admin.register(SpamClassifier)
class SpamClassifierAdmin(LookOnly):
    list_display = ["version", "is_active", "threshold", "trained_on", "metrics", "created_at"]
    exclude = ["artifact"]


@admin.register(RequalifyJob)
class RequalifyJobAdmin(LookOnly):
    list_display = [
        "id",
        "status",
        "since",
        "filter_names",
        "done",
        "total",
        "changed",
        "created_at",
        "finished_at",
    ]
