"""The roles come back after every migrate or flush (post_migrate), as roles.py promises: a
flushed test database (transactional tests) otherwise leaves groups without permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.core.management.sql import emit_post_migrate_signal

from apps.curation.roles import ROLE_PERMISSION, ROLES

pytestmark = pytest.mark.django_db


def test_post_migrate_gives_the_roles_back_after_a_flush():
    Group.objects.all().delete()

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")

    app_label, codename = ROLE_PERMISSION.split(".")
    for role in ROLES:
        group = Group.objects.get(name=role)
        assert group.permissions.filter(
            content_type__app_label=app_label, codename=codename
        ).exists()
    assert Group.objects.get(name="admin").permissions.filter(codename="change_alias").exists()
