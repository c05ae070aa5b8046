from django.contrib import admin

from apps.serving.models import Arm, Experiment, ServedAnswer


class ArmInline(admin.TabularInline):
    model = Arm
    extra = 0
    raw_id_fields = ["checkpoint", "alias", "resolved"]


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "alias", "started_at", "stopped_at"]
    list_filter = ["status"]
    inlines = [ArmInline]
    raw_id_fields = ["alias", "decided_arm", "promote_move", "created_by"]


@admin.register(ServedAnswer)
class ServedAnswerAdmin(admin.ModelAdmin):
    """Read-only: answers are records of what was served."""

    list_display = [
        "interaction_id",
        "checkpoint",
        "requested_model",
        "experiment",
        "arm",
        "latency_ms",
        "created_at",
    ]
    list_filter = ["backend", "stream"]
    search_fields = ["interaction_id", "trace_id"]
    raw_id_fields = ["checkpoint", "source", "experiment", "arm"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
