"""How focal-pl writes and checks its files, whatever stops it midway: ``atomic`` (a file whole or
not at all), ``checkpoint`` (checkpoint files with the sha256 of their weights, read back with
one-line errors) and ``locks`` (a folder held by one process, which names itself). No Lightning,
no model: data, extractors and the run machinery all use it."""
