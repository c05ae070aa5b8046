from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.peers.models import (
    FastChatLogCursor,
    LangfuseObservation,
    LangfuseScore,
    OpenWebUIConnector,
)
from apps.peers.openwebui.services import openwebui_connector_save


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OpenWebUIConnectorForm(forms.ModelForm):
    base_url = forms.URLField(
        max_length=500,
        assume_scheme="https",
        help_text="The Open WebUI server's root, e.g. https://chat.example.org",
    )
    # The token is written, never shown again: an empty field keeps the stored one.
    token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="An Open WebUI admin's API key. Leave empty to keep the stored one.",
    )

    class Meta:
        model = OpenWebUIConnector
        fields = ["name", "source", "base_url", "token", "interval_minutes", "is_active"]

    def clean_token(self) -> str | None:
        token = self.cleaned_data.get("token") or None
        if token is None and not (self.instance and self.instance.pk):
            raise forms.ValidationError("A new connector needs a token.")
        return token

    def _post_clean(self) -> None:
        # The service validates the whole connector when it saves; an empty token field here
        # must not blank the stored token during the form's own model validation.
        token = self.cleaned_data.get("token")
        if token is None and self.instance.pk:
            self.cleaned_data.pop("token", None)
        super()._post_clean()


@admin.register(OpenWebUIConnector)
class OpenWebUIConnectorAdmin(admin.ModelAdmin):
    form = OpenWebUIConnectorForm
    list_display = [
        "name",
        "base_url",
        "source",
        "shown_token",
        "interval_minutes",
        "is_active",
        "last_run_at",
        "last_success_at",
        "last_imported",
        "total_imported",
        "has_error",
    ]
    list_filter = ["is_active", "source"]
    search_fields = ["name", "base_url"]
    readonly_fields = [
        "shown_token",
        "watermark",
        "next_run_at",
        "running_since",
        "last_run_at",
        "last_success_at",
        "last_error",
        "last_imported",
        "last_duplicate",
        "last_rejected",
        "total_imported",
        "total_runs",
        "created_at",
    ]
    actions = ["pull_now"]

    @admin.display(description="token")
    def shown_token(self, connector: OpenWebUIConnector) -> str:
        return connector.masked_token

    @admin.display(description="error", boolean=True)
    def has_error(self, connector: OpenWebUIConnector) -> bool:
        return bool(connector.last_error)

    def save_model(
        self, request: HttpRequest, obj: OpenWebUIConnector, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        openwebui_connector_save(
            connector=obj,
            name=data["name"],
            source=data["source"],
            base_url=data["base_url"],
            token=data.get("token"),
            interval_minutes=data["interval_minutes"],
            is_active=data["is_active"],
        )

    @admin.action(description="Pull now (queue a pull of the selected connectors)")
    def pull_now(self, request: HttpRequest, queryset: QuerySet[OpenWebUIConnector]) -> None:
        from apps.peers.tasks import openwebui_pull

        ids = list(queryset.values_list("pk", flat=True))
        for pk in ids:
            transaction.on_commit(lambda pk=pk: openwebui_pull.delay(pk))
        self.message_user(
            request, f"Queued {len(ids)} pull(s); see their last run here.", messages.INFO
        )


@admin.register(LangfuseScore)
class LangfuseScoreAdmin(_ReadOnly):
    list_display = [
        "score_id",
        "source",
        "trace_id",
        "name",
        "data_type",
        "value",
        "string_value",
        "revision",
        "with_text",
        "event",
        "retracted_at",
        "updated_at",
    ]
    list_filter = ["source", "data_type", "with_text"]
    search_fields = ["score_id", "trace_id", "observation_id", "session_id", "name"]
    list_select_related = ["source", "event"]


@admin.register(LangfuseObservation)
class LangfuseObservationAdmin(_ReadOnly):
    list_display = ["trace_id", "observation_id", "kind", "source", "name", "model", "updated_at"]
    list_filter = ["source", "kind"]
    search_fields = ["trace_id", "observation_id", "session_id"]
    list_select_related = ["source"]


@admin.register(FastChatLogCursor)
class FastChatLogCursorAdmin(_ReadOnly):
    list_display = [
        "path",
        "source",
        "offset",
        "lines",
        "imported",
        "duplicate",
        "rejected",
        "skipped",
        "updated_at",
    ]
    list_select_related = ["source"]
