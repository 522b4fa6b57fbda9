from wangban.migrations import run_env

from notify_service.models import metadata

run_env(metadata)
