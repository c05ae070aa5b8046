"""The three roles, as Django groups: viewer, curator, admin.

- viewer: reads everything (the `view_*` permissions of the project's apps).
- curator: a viewer who decides: accept, reject, tag, edit to gold (`curation.add_decision`),
  overrules verdicts, writes recipes and builds dataset versions.
- admin: every permission of the project's apps, among them `training.add_trainingrun` (launch
  training) and `registry.change_alias` (publish, move aliases).

Superusers can do everything without a group. `ensure_roles` is idempotent; it runs in the data
migration and again after every `migrate`/`flush` (post_migrate), so groups also pick up the
permissions of models added later."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

PROJECT_APPS = (
    "sources",
    "feedback",
    "quality",
    "connectors",
    "curation",
    "datasets",
    "registry",
    "training",
    "evaluation",
    "serving",
)
CURATOR_EXTRA = (
    "curation.add_decision",
    "curation.change_decision",
    "curation.add_eventtag",
    "curation.delete_eventtag",
    "quality.add_verdictoverride",
    "quality.add_curatorlabel",
    "datasets.add_recipe",
    "datasets.change_recipe",
    "datasets.add_evalset",
    "datasets.add_datasetversion",
)
ROLES = ("viewer", "curator", "admin")


def ensure_roles(apps: Any = None) -> None:
    """Create the groups (if missing) and give them their permissions (adding, never removing
    what an operator granted by hand)."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    perms = list(
        permission_model.objects.filter(content_type__app_label__in=PROJECT_APPS).select_related(
            "content_type"
        )
    )
    by_name = {f"{p.content_type.app_label}.{p.codename}": p for p in perms}
    viewer = [p for p in perms if p.codename.startswith("view_")]
    curator = viewer + [by_name[name] for name in CURATOR_EXTRA if name in by_name]
    grants = {"viewer": viewer, "curator": curator, "admin": perms}
    for role in ROLES:
        group, _ = group_model.objects.get_or_create(name=role)
        have = set(group.permissions.values_list("id", flat=True))
        missing = [p for p in grants[role] if p.id not in have]
        if missing:
            group.permissions.add(*missing)


def on_post_migrate(sender: Any, **kwargs: Any) -> None:
    """After the last app's permissions exist (post_migrate is sent once per app, in order, and
    only for apps with a models module: the last app, apps.site, has none, and waiting for it
    left a flushed database without roles)."""
    from django.apps import apps as global_apps

    configs = [c for c in global_apps.get_app_configs() if c.models_module is not None]
    if configs and sender.label == configs[-1].label:
        ensure_roles()


# What every role has (viewers read everything): holding it is what "has a role" means, for
# pages and the API alike. A logged-in user without it sees no data anywhere.
ROLE_PERMISSION = "feedback.view_event"
NO_ROLE_MESSAGE = "This needs a role (viewer, curator or admin); ask an admin to give you one."


def has_role(user: Any) -> bool:
    """A logged-in person with a role: a superuser, a member of viewer/curator/admin, or someone
    an operator gave the viewers' permission by hand. API keys are not people: False."""
    return bool(
        user
        and user.is_authenticated
        and hasattr(user, "get_username")
        and user.has_perm(ROLE_PERMISSION)
    )


def role_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """For the staff pages: anonymous visitors go to the login page, a user without a role gets
    403."""

    @wraps(view)
    def checked(request: Any, *args: Any, **kwargs: Any) -> Any:
        if not has_role(request.user):
            raise PermissionDenied(NO_ROLE_MESSAGE)
        return view(request, *args, **kwargs)

    return login_required(checked)


def is_curator(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.has_perm("curation.add_decision"))
