"""Book layer: the runner that executes the chapters with papermill and builds the Jupyter Book, and the
helpers the chapters call (``pages``: banner and runs folder; ``report``, ``eda``, ``speed``, ``evidence``:
tables and sentences computed from results).

May import every layer below the faces; ``python -m medvision.book`` runs :func:`medvision.book.build.main`.
"""
