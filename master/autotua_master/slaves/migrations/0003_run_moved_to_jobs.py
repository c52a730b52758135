# slaves.Run is jobs.Run now (jobs 0004): dropped from the state only, its table is kept. And a
# slave records whom it trusts (the claim's "trust").

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0004_run_moves_here'),
        ('slaves', '0002_owner'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name='Run')],
            database_operations=[],
        ),
        migrations.AddField(
            model_name='slave',
            name='trust',
            field=models.JSONField(blank=True, help_text='fingerprints of the maintainers whose jobs it takes (every signer of a job must be among them); empty: every maintainer the master records', null=True),
        ),
    ]
