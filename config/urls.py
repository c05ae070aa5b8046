from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.core import views as core_views
from apps.site import views as site_views

urlpatterns = [
    path("", site_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", core_views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("apps.feedback.urls")),
    path("api/v1/", include("apps.curation.urls")),
    path("api/v1/", include("apps.datasets.urls")),
    path("api/v1/", include("apps.registry.urls")),
    path("api/v1/", include("apps.training.urls")),
    path("api/v1/", include("apps.evaluation.urls")),
    path("api/v1/", include("apps.serving.urls")),
    path("api/v1/", include("apps.judges.urls")),
    path("v1/", include("apps.serving.gateway_urls")),
    # Pages: curators' workbench, datasets, training, checkpoints, leaderboard, experiments.
    path("", include("apps.curation.page_urls")),
    path("datasets/", include("apps.datasets.page_urls")),
    path("training/", include("apps.training.page_urls")),
    path("checkpoints/", include("apps.registry.page_urls")),
    path("leaderboard/", include("apps.evaluation.page_urls")),
    path("experiments/", include("apps.serving.page_urls")),
    path("judges/", include("apps.judges.page_urls")),
    path("api/public/", include("apps.peers.langfuse.urls")),
    path("demo/", include("apps.site.demo_urls")),
]
