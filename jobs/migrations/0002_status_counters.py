from django.db import migrations

TYPES = [
    "create_domain_user", "provision_sso_user", "credential_rotation", "directory_sync",
    "audit_ingestion", "asset_discovery", "bulk_import", "jml_automation", "remediation",
]
STATUSES = ["pending", "running", "completed", "failed", "retrying"]


def create_counters(apps, schema_editor):
    JobStatusCount = apps.get_model("jobs", "JobStatusCount")
    JobStatusCount.objects.bulk_create(
        [JobStatusCount(job_type=t, status=s, count=0) for t in TYPES for s in STATUSES],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial")]
    operations = [migrations.RunPython(create_counters, migrations.RunPython.noop)]
