from wangban.migrations import run_env

from intake_service.models import metadata

run_env(metadata)
