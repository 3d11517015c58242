from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("renameapp", "0001_initial")]

    operations = [
        migrations.RenameField("gadget", "label", "title"),
        migrations.RenameField("gadget", "owner", "maker"),
    ]
