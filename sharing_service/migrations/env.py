from wangban.migrations import run_env

from sharing_service.models import metadata

run_env(metadata)
