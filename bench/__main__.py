"""`python -m bench`: patch the standard library for gevent before anything imports it."""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from bench.run import main  # noqa: E402

sys.exit(main())
