from wangban.migrations import run_env

from catalog_service.models import metadata

run_env(metadata)
