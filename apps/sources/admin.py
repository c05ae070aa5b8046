from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.sources.models import ApiKey, Source
from apps.sources.services import api_key_revoke, source_keys_rotate


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ["prefix", "kind", "created_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "is_active",
        "redact_pii",
        "hold_for_review",
        "rate_limit_per_minute",
        "rater_rate_limit_per_minute",
        "created_at",
    ]
    search_fields = ["name", "description"]
    inlines = [ApiKeyInline]
    actions = ["rotate_keys"]

    @admin.action(description="Rotate keys (revoke the active ones, issue new ones)")
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[Source]) -> None:
        for source in queryset:
            issued = source_keys_rotate(source=source)
            shown = ", ".join(f"{i.key.kind}: {i.raw}" for i in issued)
            self.message_user(
                request, f"{source.name}: new keys (shown once) — {shown}", messages.WARNING
            )


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "source", "kind", "created_at", "revoked_at"]
    list_filter = ["kind", "source"]
    readonly_fields = ["source", "kind", "prefix", "key_hash", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return (
            False  # keys are issued by creating or rotating a source, so the raw key is shown once
        )

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            api_key_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")
