from intake_service.models import metadata
from wangban.migrations import run_env

run_env(metadata)
