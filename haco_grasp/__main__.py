import sys

from haco_grasp.cli import main

sys.exit(main())
