import sys

from wangban.cli import main

sys.exit(main())
