"""Creates the demo's accounts (see ``notifications.accounts``); demo only."""

from django.contrib.auth.hashers import make_password
from django.db import migrations

from notifications.accounts import DEMO_PASSWORD, DEMO_USERS


def create_demo_users(apps, schema_editor):
    User = apps.get_model("auth", "User")
    password = make_password(DEMO_PASSWORD)
    for name in DEMO_USERS:
        User.objects.get_or_create(username=name, defaults={"password": password})


def remove_demo_users(apps, schema_editor):
    apps.get_model("auth", "User").objects.filter(username__in=DEMO_USERS).delete()


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_demo_users, remove_demo_users)]
