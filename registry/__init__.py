"""Reference central card registry: devices, cards, templates, trust/revocation lists, token ingest, audit."""
