"""The OpenAI-compatible gateway, under /v1/."""

from django.urls import path

from apps.serving import gateway

urlpatterns = [
    path("chat/completions", gateway.chat_completions, name="gateway-chat-completions"),
    path("models", gateway.list_models, name="gateway-models"),
]
