"""ssafuse: fuse allied and public space-surveillance feeds into one catalogue, screen it for
conjunctions, and keep everything in Parquet.

Everything a user needs is here, by name (as Skyfield's ``api``): import ``ssafuse`` and go.

>>> import ssafuse
>>> store = ssafuse.Store("store")
>>> report = ssafuse.ingest(store, ["sample_tles/"], source="celestrak")   # doctest: +SKIP
>>> catalogue = ssafuse.build_catalogue(store.table("elements"))          # doctest: +SKIP
>>> result = ssafuse.screen(catalogue, "2026-03-10T00:00:00Z", days=1)    # doctest: +SKIP
>>> result.conjunctions.to_pandas()                                       # doctest: +SKIP

The stages, bottom to top (each module has one job; the folders are the architecture):

=====================  =================================================================
``constants``          WGS-72 Earth (what SGP4 uses) and time units
``timeutil``           nanoseconds since 1970 <-> ISO text, datetime, Julian dates
``schema``             every table's Arrow schema, units in the column names
``markings``           parse, combine, and the release rule
``files``              atomic writes, input expansion, hashing
``formats``            one module per format family; ``formats.registry`` sniffs files
``records``            one file's records -> canonical tables with provenance and markings
``store``              the Parquet store (tables, ledger, rejects, manifests)
``ingestion``          files -> store
``propagate``          SGP4 (``SatrecArray``), frames through Skyfield
``catalogue``          one element set per object, combined markings, disagreement
``sensors``            sensor and site tables
``correlation``        observations -> catalogue objects, UCTs
``od``                 orbit determination: observations -> fitted element sets, covariance
``screening``          all-vs-all conjunction screening (slices, kernels, executors)
``pc``                 collision probability maths
``assessment``         Pc / max Pc for screened events, CDMs from conjunctions
``jobs``               one call per command: catalogue a store, screen files or a store
``runs``               the run-folder layout shared by report, export and the job
``tearline``           each partner's view: its catalogue and events, recomputed where needed
``report``, ``export`` the operator's report; each partner's tear-line export
``nightly``            the cron job: config, lock, stages
``cli``                the ``ssafuse`` command line, wiring only
=====================  =================================================================
"""

from . import formats, schema
from .assessment import assess, cdms_for_screening, pc_of_cdm_files, write_cdms
from .catalogue import build_catalogue
from .correlation import correlate, correlate_store, object_summary
from .errors import FormatError, MarkingError, SsafuseError
from .export import export_partners, export_run
from .formats.ccsds.cdm import Cdm
from .formats.ccsds.cdm import dumps_kvn as cdm_to_kvn
from .formats.ccsds.cdm import dumps_xml as cdm_to_xml
from .formats.ccsds.cdm import read_all as read_cdms
from .formats.registry import formats as list_formats
from .ingestion import FileReport, IngestReport, ingest
from .jobs import screen_inputs, update_catalogue
from .markings import Marking
from .markings import parse as parse_marking
from .nightly import RunConfig, RunResult, load_config
from .nightly import run as run_nightly
from . import od
from .od import OdResult, OdSettings, od_store
from .propagate import propagate_chunked, satrecs, teme_to_gcrs, teme_to_itrs
from .records import FileResult, read_file
from .report import write_report
from .screening import ScreenResult, screen
from .sensors import read_sensors
from .store import Store
from .tearline import PartnerView, partner_views
from .versions import __version__

__all__ = [
    # store and ingest
    "Store", "ingest", "IngestReport", "FileReport", "read_file", "FileResult",
    "list_formats", "formats", "schema",
    # catalogue and propagation
    "build_catalogue", "update_catalogue", "satrecs", "propagate_chunked", "teme_to_gcrs",
    "teme_to_itrs",
    # observations
    "read_sensors", "correlate", "correlate_store", "object_summary",
    # orbit determination
    "od", "od_store", "OdSettings", "OdResult",
    # conjunctions
    "screen", "ScreenResult", "screen_inputs", "assess", "write_cdms", "cdms_for_screening",
    "pc_of_cdm_files", "Cdm", "read_cdms", "cdm_to_kvn", "cdm_to_xml",
    # the nightly job, reports and partner exports
    "run_nightly", "load_config", "RunConfig", "RunResult", "write_report", "export_run",
    "export_partners", "partner_views", "PartnerView",
    # markings and errors
    "Marking", "parse_marking", "SsafuseError", "FormatError", "MarkingError",
    "__version__",
]
