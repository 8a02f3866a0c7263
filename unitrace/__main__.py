import sys

from unitrace.cli.main import main

sys.exit(main())
