from wangban.migrations import run_env

from approval_service.models import metadata

run_env(metadata)
