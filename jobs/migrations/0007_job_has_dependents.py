from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0006_job_dependencies_and_waiting"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="has_dependents",
            field=models.BooleanField(default=False),
        ),
        migrations.RunSQL(
            "UPDATE jobs_job SET has_dependents = TRUE"
            " WHERE id IN (SELECT prerequisite_id FROM jobs_jobdependency)",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
