# The dispatch (issue 14): the run's table becomes jobs_run; a run records since when it waits for a
# SIDEPEND; a job carries its signers' fingerprints (stamped here for the jobs already there), a
# priority and its turn in the queue's rotation over owners, with the index claims read.

from django.db import migrations, models


def stamp(apps, schema_editor):
    """Every job's maintainers and signers, from its plan and the recorded keys (as validation does)."""
    Job = apps.get_model('jobs', 'Job')
    Maintainer = apps.get_model('tree', 'Maintainer')
    keys = dict(Maintainer.objects.filter(user__is_active=True).values_list('name', 'fingerprint'))
    for job in Job.objects.all().iterator():
        users = {e['jobuild'].split('/', 1)[0] for e in job.plan}
        users |= {t.split('/', 1)[0] for e in job.plan for t in e.get('inherited', [])}
        job.maintainers = {u: keys[u] for u in sorted(users) if u in keys}
        job.signers = sorted(set(job.maintainers.values()))
        job.turn = job.pk
        job.save(update_fields=['maintainers', 'signers', 'turn'])


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0004_run_moves_here'),
        ('slaves', '0003_run_moved_to_jobs'),
        ('tree', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelTable(name='run', table=None),
        migrations.AddField(
            model_name='run',
            name='waiting_since',
            field=models.DateTimeField(blank=True, help_text='since when the slave waits for a SIDEPEND (the wait is bounded)', null=True),
        ),
        migrations.AlterField(
            model_name='run',
            name='end',
            field=models.CharField(blank=True, choices=[('finished', 'finished by the slave'), ('expired', 'lease expired'), ('superseded', 'the slave claimed again with a new run'), ('cancelled', 'job cancelled'), ('requeued', 'requeued by staff'), ('aborted', 'aborted by the master: a SIDEPEND failed'), ('waited', 'its wait for a SIDEPEND ended: the job went back to the queue')], max_length=12),
        ),
        migrations.RemoveIndex(
            model_name='job',
            name='job_queued',
        ),
        migrations.AddField(
            model_name='job',
            name='maintainers',
            field=models.JSONField(blank=True, default=dict, help_text='name -> fingerprint of everyone whose jobuilds or templates the plan uses (slaves verify against these)'),
        ),
        migrations.AddField(
            model_name='job',
            name='signers',
            field=models.JSONField(blank=True, default=list, help_text='those fingerprints, sorted: a slave that names whom it trusts gets only jobs whose every signer it trusts'),
        ),
        migrations.AddField(
            model_name='job',
            name='priority',
            field=models.IntegerField(default=0, help_text='set by staff: a higher priority is claimed first'),
        ),
        migrations.AddField(
            model_name='job',
            name='turn',
            field=models.PositiveBigIntegerField(default=0, help_text='its turn among the queued jobs (fair shares across owners), given when first queued'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('state', 'queued')), fields=['arch', '-priority', 'turn', 'id'], name='job_queue'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(condition=models.Q(('state', 'queued')), fields=['owner', 'turn'], name='job_queued_turns'),
        ),
        migrations.AddIndex(
            model_name='run',
            index=models.Index(condition=models.Q(('ended__isnull', True)), fields=['slave'], name='run_live_slave'),
        ),
        migrations.RunPython(stamp, migrations.RunPython.noop),
    ]
