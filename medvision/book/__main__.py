"""``python -m medvision.book``: run the chapters and build the book (see :mod:`medvision.book.build`)."""

import sys

from medvision.book.build import main

if __name__ == "__main__":
    sys.exit(main())
