"""Everything Stockyard keeps on disk, in one SQLite file.

* :mod:`.database` — the :class:`~.database.Store`: migrations, the batching writer task and the
  reader connection;
* :mod:`.schema` — the versioned migrations; :mod:`.ledger` — the hash-chained audit events;
  :mod:`.spend` — daily spend rollups; :mod:`.verify` — ledger verification from the CLI;
* :mod:`.money` — exact amounts as integer pico-dollars.

Nothing is imported here, so that the checker and the modules' schemas can use ``money`` and
``spend`` without loading asyncio and aiosqlite.
"""
