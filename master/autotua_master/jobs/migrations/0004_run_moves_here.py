# The run (a job's attempt) and its protocol move from the slaves app to the jobs app. This step
# only tells Django's state that jobs.Run is the table slaves_run (nothing in the database changes);
# slaves 0003 drops slaves.Run from the state, and jobs 0005 renames the table to jobs_run.

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0003_snapshot_and_inputs'),
        ('slaves', '0002_owner'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='Run',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('uuid', models.UUIDField(default=uuid.uuid4, unique=True)),
                        ('attempt', models.PositiveIntegerField()),
                        ('claimed', models.DateTimeField(default=django.utils.timezone.now)),
                        ('lease_expires', models.DateTimeField()),
                        ('last_heartbeat', models.DateTimeField(blank=True, null=True)),
                        ('ended', models.DateTimeField(blank=True, null=True)),
                        ('end', models.CharField(blank=True, choices=[('finished', 'finished by the slave'), ('expired', 'lease expired'), ('superseded', 'the slave claimed again with a new run'), ('cancelled', 'job cancelled'), ('requeued', 'requeued by staff')], max_length=12)),
                        ('end_reason', models.TextField(blank=True)),
                        ('finish', models.JSONField(blank=True, help_text="the slave's finish call, as received", null=True)),
                        ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='runs', to='jobs.job')),
                        ('slave', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='runs', to='slaves.slave')),
                    ],
                    options={
                        'ordering': ['-claimed'],
                        'db_table': 'slaves_run',
                        'indexes': [models.Index(condition=models.Q(('ended__isnull', True)), fields=['lease_expires'], name='run_live_lease')],
                    },
                ),
                migrations.AlterField(
                    model_name='attachment',
                    name='run',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attachments', to='jobs.run'),
                ),
                migrations.AlterField(
                    model_name='jobuildresult',
                    name='run',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='results', to='jobs.run'),
                ),
                migrations.AlterField(
                    model_name='logfile',
                    name='run',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='logs', to='jobs.run'),
                ),
                migrations.AlterField(
                    model_name='runinputs',
                    name='run',
                    field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='inputs', to='jobs.run'),
                ),
            ],
            database_operations=[],
        ),
    ]
