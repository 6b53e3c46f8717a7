import sys

from fedrule.cli import main

sys.exit(main())
