from django.urls import path

from apps.feedback.apis import FeedbackApi, FeedbackDetailApi

urlpatterns = [
    path("feedback", FeedbackApi.as_view(), name="feedback"),
    path("feedback/<int:event_id>", FeedbackDetailApi.as_view(), name="feedback-detail"),
]
