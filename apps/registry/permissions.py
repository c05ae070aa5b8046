"""Who may do what in the registry and training (shared by both apps and their pages).

- Reading (checkpoints, aliases, runs, the serving manifest): a logged-in user with a role
  (apps/curation/roles.py), or a secret API key (`sk-…`) so that a serving box can sync without
  a person's login.
- Publishing, retiring and moving aliases: superusers, the `admin` group, or whoever holds
  `registry.change_alias`; by session only — a source's key is for feedback, and a leaked one
  must not change what production serves.
- Launching and cancelling training: superusers, the `admin` group, or `training.add_trainingrun`;
  by session only, for the same reason (and because a run costs GPU hours).
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from apps.curation.roles import has_role
from apps.sources.models import ApiKey

ADMIN_GROUP = "admin"


def is_admin(user: Any) -> bool:
    if not (user and user.is_authenticated):
        return False
    if getattr(user, "is_superuser", False):
        return True
    groups = getattr(user, "groups", None)
    return bool(groups is not None and groups.filter(name=ADMIN_GROUP).exists())


def can_publish(user: Any) -> bool:
    return is_admin(user) or bool(
        user and user.is_authenticated and user.has_perm("registry.change_alias")
    )


def can_train(user: Any) -> bool:
    return is_admin(user) or bool(
        user and user.is_authenticated and user.has_perm("training.add_trainingrun")
    )


class CanRead(permissions.BasePermission):
    message = "Reading needs a login or a secret key (sk-…)."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiKey):
            return request.auth.kind == ApiKey.Kind.SECRET
        return has_role(request.user)


class CanPublish(permissions.BasePermission):
    message = "Publishing and moving aliases needs an admin's login (or registry.change_alias)."

    def has_permission(self, request: Request, view: Any) -> bool:
        return not isinstance(request.auth, ApiKey) and can_publish(request.user)


class CanTrain(permissions.BasePermission):
    message = (
        "Launching or cancelling training needs an admin's login (or training.add_trainingrun)."
    )

    def has_permission(self, request: Request, view: Any) -> bool:
        return not isinstance(request.auth, ApiKey) and can_train(request.user)
