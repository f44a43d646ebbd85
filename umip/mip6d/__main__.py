import sys

from mip6d.main import main

sys.exit(main())
