"""The book's ``dataset/`` package (see :mod:`xpnet.book`)."""
