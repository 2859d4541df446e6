import sys

from rnnlm.cli import main

sys.exit(main())
