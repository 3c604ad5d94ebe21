"""Guardianship links follow the civil registry's change feed; guardians can end a link; coalesced alerts."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0005_personal_data_at_rest')]

    initial = False

    operations: list = []
