"""Every format family ssafuse reads (and, for CCSDS messages, writes), one module each:

=================  ==================================================================
``registry``       the list of formats, sniffing, users' own description folders
``base``           what every adapter shares: ``Batch``, ``Format``, ``Reject``, limits
``safexml``        untrusted XML, read one safe way (defusedxml SAX)
``tle``            TLE / 3LE (columns as data, checksums, Alpha-5)
``optical``        IOD, UK and RDE optical observations
``ccsds``          CCSDS messages (CDM, OMM, TDM): model, reader, strict writer, keyword
                   tables, one home per message; OMM also as JSON and GP CSV
``declarative``    partner feeds described in TOML (``ingest_formats/``, users' folders)
=================  ==================================================================

An adapter is stateless: ``read(stream, uri)`` yields :class:`~ssafuse.formats.base.Batch`
objects of canonical records and rejects; :mod:`ssafuse.records` turns them into tables.
"""
