"""Writes of the datasets app: recipes and eval sets (`recipes`), the build (`build`)."""

from apps.datasets.services.build import dataset_version_build
from apps.datasets.services.recipes import (
    adhoc_recipe_name,
    dataset_version_create,
    eval_set_create,
    recipe_create,
    recipe_delete,
    recipe_snapshot,
    recipe_update,
)

__all__ = [
    "adhoc_recipe_name",
    "dataset_version_build",
    "dataset_version_create",
    "eval_set_create",
    "recipe_create",
    "recipe_delete",
    "recipe_snapshot",
    "recipe_update",
]
