"""The curation API, under /api/v1/."""

from django.urls import path

from apps.curation import apis

urlpatterns = [
    path(
        "events/<int:event_id>/decisions", apis.EventDecisionsApi.as_view(), name="event-decisions"
    ),
    path("decisions/bulk", apis.DecisionBulkApi.as_view(), name="decisions-bulk"),
    path("decisions/<int:decision_id>/undo", apis.DecisionUndoApi.as_view(), name="decision-undo"),
    path("decisions/batches/<uuid:batch>/undo", apis.BatchUndoApi.as_view(), name="batch-undo"),
    path("inbox/count", apis.InboxCountApi.as_view(), name="inbox-count"),
]
