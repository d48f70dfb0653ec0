"""``python -m medvision.book``: run the chapters and build the book (see :mod:`medvision.book.build`)."""

import sys

from medvision.book.build import main

sys.exit(main())
