"""CCSDS Navigation Data Messages, one home each (as Orekit's ``files.ccsds.ndm`` keeps them).

Each message has its data model, a lenient reader (every problem a
:class:`~ssafuse.errors.FormatError` naming line and keyword, or a reject), a strict writer, and
its keyword table as data (``keywords/*.csv``: which keywords each version defines, in the
standard's order, with their units and allowed values), side by side:

=============  ===============================================================================
``cdm``        Conjunction Data Message, 508.0-B-1 (version 1.0) and the CDM 2.0 keywords:
               model, reader (KVN, XML), strict writer (KVN, XML, either version)
``omm``        Orbit Mean-elements Message, 502.0-B-2/3: reader (KVN, XML, JSON, GP CSV)
``omm_write``  its strict writers: KVN, NDM/XML and CelesTrak-style JSON
``tdm``        Tracking Data Message, 503.0-B-1/2: reader (KVN, XML); ssafuse writes no TDM
=============  ===============================================================================

The ingest adapters (:mod:`ssafuse.formats.registry`) call the readers; the exports and the
nightly job call the writers. Lenient when reading, strict when writing: a writer writes
nothing the standard's schema would reject. A CDM writer raises :class:`ValueError`; the
catalogue writers (OMM, and TLE in :mod:`ssafuse.formats.tle`) write the rows they can and
return the others as :class:`~ssafuse.formats.ccsds.omm_write.Refused` with the reason.
"""
