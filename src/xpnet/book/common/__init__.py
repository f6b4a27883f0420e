"""The book's ``common/`` package (see :mod:`xpnet.book`)."""
