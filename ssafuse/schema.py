"""The canonical tables: one Arrow schema per table, the single source of truth.

Readers (ingest adapters), writers (the store) and the docs all take their column names, types
and units from here. Units are in the column names (``_km``, ``_deg``, ``_rev_day``); where a
name cannot carry the unit (``bstar``, the mean-motion derivatives) the field metadata does.
Every time is ``timestamp[ns, UTC]``.

Tables later capabilities add (observations, sensors, conjunctions, cdms, correlations) are
named in :data:`TABLES` so the store lays them out the same way; their schemas join this module
with the capability that fills them.
"""

from __future__ import annotations

import pyarrow as pa

TIME = pa.timestamp("ns", tz="UTC")


def _f(name: str, type_: pa.DataType, doc: str, *, unit: str | None = None,
       nullable: bool = True) -> pa.Field:
    meta = {"doc": doc}
    if unit:
        meta["unit"] = unit
    return pa.field(name, type_, nullable=nullable, metadata=meta)


#: Where a record came from: which feed, which file, which record in it, and when.
PROVENANCE_FIELDS = [
    _f("source", pa.string(), "feed name given at ingest (e.g. 'spacetrack', 'ukspoc')",
       nullable=False),
    _f("source_format", pa.string(), "format the record was read as (see `ssafuse formats`)",
       nullable=False),
    _f("source_uri", pa.string(), "path or URL of the file the record was read from",
       nullable=False),
    _f("source_sha256", pa.string(), "SHA-256 of the whole input file, hex", nullable=False),
    _f("source_record", pa.int64(), "record number in the file: 1-based line number of the "
       "record's first line for text formats, 1-based index for JSON/XML", nullable=False),
    _f("ingested_at", TIME, "when the record entered the store (UTC)", nullable=False),
]

#: Who may see a record.
MARKING_FIELDS = [
    _f("classification", pa.string(), "UNCLASSIFIED, CONFIDENTIAL, SECRET or TOP SECRET",
       nullable=False),
    _f("releasable_to", pa.list_(pa.string()), "country trigraphs / coalition tetragraphs the "
       "record may be released to; null when the marking states no releasability caveat"),
    _f("marking", pa.string(), "the marking text as received (or the feed default applied)",
       nullable=False),
]

ELEMENT_FIELDS = [
    _f("object_id", pa.int64(), "NORAD catalogue number (Alpha-5 and 6-9 digit numbers decoded)",
       nullable=False),
    _f("intl_designator", pa.string(), "COSPAR international designator, YYYY-NNNPPP"),
    _f("object_name", pa.string(), "object name as received"),
    _f("epoch", TIME, "element set epoch (UTC)", nullable=False),
    _f("mean_motion_rev_day", pa.float64(), "SGP4 (Kozai) mean motion", unit="rev/day",
       nullable=False),
    _f("eccentricity", pa.float64(), "mean eccentricity", unit="1", nullable=False),
    _f("inclination_deg", pa.float64(), "mean inclination", unit="deg", nullable=False),
    _f("raan_deg", pa.float64(), "right ascension of the ascending node", unit="deg",
       nullable=False),
    _f("arg_perigee_deg", pa.float64(), "argument of perigee", unit="deg", nullable=False),
    _f("mean_anomaly_deg", pa.float64(), "mean anomaly", unit="deg", nullable=False),
    _f("bstar", pa.float64(), "SGP4 drag term B*", unit="1/earth_radii", nullable=False),
    _f("mean_motion_dot", pa.float64(), "first derivative of mean motion divided by 2, "
       "as in TLE line 1 and OMM MEAN_MOTION_DOT", unit="rev/day^2"),
    _f("mean_motion_ddot", pa.float64(), "second derivative of mean motion divided by 6, "
       "as in TLE line 1 and OMM MEAN_MOTION_DDOT", unit="rev/day^3"),
    _f("ephemeris_type", pa.int16(), "0 or 2 for SGP4 (4 = SGP4-XP)"),
    _f("element_set_no", pa.int32(), "element set number"),
    _f("rev_at_epoch", pa.int64(), "revolution number at epoch"),
    _f("object_type", pa.string(), "PAYLOAD, ROCKET BODY, DEBRIS, UNKNOWN, where the feed says"),
    _f("rcs_size", pa.string(), "SMALL, MEDIUM, LARGE, where the feed says"),
    _f("country", pa.string(), "owner / country code, where the feed says"),
]

ELEMENTS = pa.schema(ELEMENT_FIELDS + PROVENANCE_FIELDS + MARKING_FIELDS,
                     metadata={"table": "elements"})

#: Columns an adapter may fill for an element set (everything but provenance and marking).
ELEMENT_COLUMNS = tuple(f.name for f in ELEMENT_FIELDS)

REJECTS = pa.schema([
    _f("source", pa.string(), "feed name given at ingest", nullable=False),
    _f("source_format", pa.string(), "format the file was read as; 'unknown' when none matched",
       nullable=False),
    _f("source_uri", pa.string(), "path or URL of the file", nullable=False),
    _f("source_sha256", pa.string(), "SHA-256 of the whole input file, hex", nullable=False),
    _f("source_record", pa.int64(), "record number (as in elements.source_record); 0 when the "
       "whole file was refused", nullable=False),
    _f("table", pa.string(), "the table the record was meant for", nullable=False),
    _f("raw", pa.string(), "the record's raw text, truncated to 512 characters",
       nullable=False),
    _f("reason", pa.string(), "why it was refused, in words a person can act on",
       nullable=False),
    _f("field", pa.string(), "the offending field, where one is to blame"),
    _f("ingested_at", TIME, "when the record was refused (UTC)", nullable=False),
], metadata={"table": "rejects"})

#: A catalogue entry: the chosen element set of each object, plus how it was chosen.
CATALOGUE = pa.schema(
    ELEMENT_FIELDS + PROVENANCE_FIELDS + MARKING_FIELDS + [
        _f("n_element_sets", pa.int64(), "element sets of this object in the store",
           nullable=False),
        _f("n_sources", pa.int64(), "distinct sources that reported this object",
           nullable=False),
        _f("sources", pa.list_(pa.string()), "the sources that reported it, sorted",
           nullable=False),
        _f("max_disagreement_km", pa.float64(), "largest distance between the chosen element "
           "set and each other source's newest one whose epoch is within "
           "disagree_max_gap_days of it, both propagated with SGP4 to the chosen epoch; null "
           "when no other source has one (ssafuse.epochs)", unit="km"),
        _f("disagreement_source", pa.string(), "the source farthest from the chosen one"),
        _f("disagreement_epoch", pa.timestamp("ns", tz="UTC"), "epoch of that source's element "
           "set (the one compared)"),
        _f("sources_disagree", pa.bool_(), "max_disagreement_km above the threshold",
           nullable=False),
        _f("sources_classification", pa.string(), "classification of what the entry says "
           "about the other element sets (n_element_sets ... sources_disagree): the most "
           "restrictive of every element set of the object", nullable=False),
        _f("sources_releasable_to", pa.list_(pa.string()), "releasability of those columns: "
           "the intersection over every element set of the object"),
        _f("sources_marking", pa.string(), "their combined marking as text", nullable=False),
    ], metadata={"table": "catalogue"})

#: One row per close approach found by screening (``ssafuse.screen``).
CONJUNCTIONS = pa.schema([
    _f("object_id_1", pa.int64(), "NORAD number of object 1: the primary when screening "
       "primaries, else the smaller number", nullable=False),
    _f("object_id_2", pa.int64(), "NORAD number of object 2", nullable=False),
    _f("object_name_1", pa.string(), "name of object 1 as received"),
    _f("object_name_2", pa.string(), "name of object 2 as received"),
    _f("tca", TIME, "time of closest approach, refined on SGP4 itself (UTC)", nullable=False),
    _f("miss_distance_km", pa.float64(), "range at TCA (TEME, SGP4 positions)", unit="km",
       nullable=False),
    _f("relative_speed_km_s", pa.float64(), "|v2 - v1| at TCA", unit="km/s", nullable=False),
    _f("radial_km", pa.float64(), "object 2 relative to object 1 at TCA, radial component of "
       "object 1's RIC frame", unit="km", nullable=False),
    _f("in_track_km", pa.float64(), "in-track component (RIC of object 1)", unit="km",
       nullable=False),
    _f("cross_track_km", pa.float64(), "cross-track component (RIC of object 1)", unit="km",
       nullable=False),
    _f("dse_1_days", pa.float64(), "days since object 1's element set epoch at TCA",
       unit="day", nullable=False),
    _f("dse_2_days", pa.float64(), "days since object 2's element set epoch at TCA",
       unit="day", nullable=False),
    _f("co_located", pa.bool_(), "the pair stayed closer than the threshold over the whole "
       "window: one row per window, at its minimum range", nullable=False),
    _f("attached", pa.bool_(), "the two objects are one physical complex (vehicles docked to "
       "a station, ssafuse.attached): never given a Pc or max Pc, listed once per group in the "
       "report; null in runs made before this column"),
    _f("attached_group", pa.string(), "the complex both objects belong to (a configured name "
       "such as 'ISS', else 'attached to <lowest NORAD number>'); null when not attached"),
    _f("pc", pa.float64(), "probability of collision, where assessed", unit="1"),
    _f("pc_method", pa.string(), "how pc was computed: 'foster-2d:cdm:<MESSAGE_ID>' (Foster 2-D "
       "from the covariances of that CDM in the store) or 'foster-2d:assumed-covariance' (from "
       "SGP4 states and a user-supplied covariance per object type: an assumption, not an "
       "orbit determination); null when no covariance is known (ssafuse.assess)"),
    _f("max_pc", pa.float64(), "maximum Pc without covariance, by max_pc_method (default "
       "'socrates': CelesTrak SOCRATES's, an encounter-plane ellipse of the shape that radial, "
       "in-track, cross-track sigmas of 100, 300, 100 m on each object project to, sized and "
       "oriented for the largest Pc, Alfano 2005); 1 when the miss is within hbr_m; null for "
       "attached objects; a bound, never a Pc (ssafuse.assess)", unit="1"),
    _f("max_pc_sigma_km", pa.float64(), "the standard deviation at which max_pc occurs "
       "(SOCRATES's dilution threshold: the ellipse's minor-axis sigma); null when max_pc is "
       "1", unit="km"),
    _f("max_pc_method", pa.string(), "how max_pc was computed: 'socrates' or 'isotropic'"),
    _f("max_pc_isotropic", pa.float64(), "the largest Foster Pc over the size of an isotropic "
       "(circular) encounter-plane covariance (Alfano 2005): always at most the SOCRATES "
       "value for the same miss and hbr_m", unit="1"),
    _f("max_pc_isotropic_sigma_km", pa.float64(), "the standard deviation at which "
       "max_pc_isotropic occurs; null when it is 1", unit="km"),
    _f("hbr_m", pa.float64(), "combined hard-body radius used for pc and max_pc", unit="m"),
    _f("hbr_source", pa.string(), "where hbr_m came from: 'cdm' (the matched CDM states it), "
       "'cara-table' (sum of both objects' CARA HBRs), 'hbr_m' (the caller's combined value)"),
    _f("threshold_km", pa.float64(), "screening threshold", unit="km", nullable=False),
    _f("window_start", TIME, "screening window start (UTC)", nullable=False),
    _f("window_end", TIME, "screening window end (UTC)", nullable=False),
    _f("source_1", pa.string(), "source of object 1's element set"),
    _f("epoch_1", TIME, "epoch of object 1's element set (UTC)", nullable=False),
    _f("source_sha256_1", pa.string(), "SHA-256 of the file object 1's element set came from"),
    _f("source_record_1", pa.int64(), "record number of object 1's element set in that file"),
    _f("source_2", pa.string(), "source of object 2's element set"),
    _f("epoch_2", TIME, "epoch of object 2's element set (UTC)", nullable=False),
    _f("source_sha256_2", pa.string(), "SHA-256 of the file object 2's element set came from"),
    _f("source_record_2", pa.int64(), "record number of object 2's element set in that file"),
    _f("classification", pa.string(), "most restrictive classification of the two element "
       "sets", nullable=False),
    _f("releasable_to", pa.list_(pa.string()), "intersection of the two element sets' "
       "releasability; null when neither states a caveat"),
    _f("marking", pa.string(), "the combined marking as text", nullable=False),
], metadata={"table": "conjunctions"})

def _cdm_object_fields(i: int) -> list[pa.Field]:
    return [
        _f(f"object{i}_id", pa.int64(), f"object {i}'s NORAD number (OBJECT_DESIGNATOR when "
           "it is a number)"),
        _f(f"object{i}_designator", pa.string(), f"object {i}'s OBJECT_DESIGNATOR as received",
           nullable=False),
        _f(f"object{i}_name", pa.string(), f"object {i}'s OBJECT_NAME"),
        _f(f"object{i}_intl_designator", pa.string(), f"object {i}'s INTERNATIONAL_DESIGNATOR"),
        _f(f"object{i}_ref_frame", pa.string(), f"object {i}'s REF_FRAME", nullable=False),
        _f(f"object{i}_covariance_method", pa.string(), f"object {i}'s COVARIANCE_METHOD"),
        _f(f"object{i}_maneuverable", pa.string(), f"object {i}'s MANEUVERABLE"),
        _f(f"object{i}_r_km", pa.list_(pa.float64(), 3), f"object {i}'s position X, Y, Z at TCA "
           "in REF_FRAME", unit="km", nullable=False),
        _f(f"object{i}_v_km_s", pa.list_(pa.float64(), 3), f"object {i}'s velocity at TCA in "
           "REF_FRAME", unit="km/s", nullable=False),
        _f(f"object{i}_cov_rtn", pa.list_(pa.float64(), 21), f"object {i}'s 6x6 RTN covariance, "
           "lower triangle row by row (CR_R, CT_R, CT_T, CN_R, ... CNDOT_NDOT)",
           unit="m**2, m**2/s, m**2/s**2", nullable=False),
    ]


#: One row per Conjunction Data Message read (CCSDS 508.0-B-1, KVN or XML).
CDMS = pa.schema([
    _f("message_id", pa.string(), "MESSAGE_ID", nullable=False),
    _f("creation_date", TIME, "CREATION_DATE (UTC)", nullable=False),
    _f("originator", pa.string(), "ORIGINATOR", nullable=False),
    _f("message_for", pa.string(), "MESSAGE_FOR"),
    _f("conjunction_id", pa.string(), "CONJUNCTION_ID (CDM-2)"),
    _f("tca", TIME, "time of closest approach (UTC)", nullable=False),
    _f("miss_distance_km", pa.float64(), "MISS_DISTANCE", unit="km", nullable=False),
    _f("relative_speed_km_s", pa.float64(), "RELATIVE_SPEED", unit="km/s"),
    _f("relative_position_rtn_km", pa.list_(pa.float64(), 3), "RELATIVE_POSITION_R/T/N",
       unit="km"),
    _f("relative_velocity_rtn_km_s", pa.list_(pa.float64(), 3), "RELATIVE_VELOCITY_R/T/N",
       unit="km/s"),
    _f("collision_probability", pa.float64(), "COLLISION_PROBABILITY as stated in the CDM"),
    _f("collision_probability_method", pa.string(), "COLLISION_PROBABILITY_METHOD"),
    _f("hbr_m", pa.float64(), "combined hard-body radius the CDM states (CARA's COMMENT HBR, "
       "or the sum of CDM-2 HBRs)", unit="m"),
    *_cdm_object_fields(1),
    *_cdm_object_fields(2),
    _f("keywords_json", pa.string(), "the whole message (every keyword and comment) as JSON",
       nullable=False),
] + PROVENANCE_FIELDS + MARKING_FIELDS, metadata={"table": "cdms"})

#: One row per Pc computed (``ssafuse pc``).
PC_RESULTS = pa.schema([
    _f("source_uri", pa.string(), "the CDM file", nullable=False),
    _f("message_id", pa.string(), "MESSAGE_ID"),
    _f("object1_designator", pa.string(), "object 1's OBJECT_DESIGNATOR"),
    _f("object2_designator", pa.string(), "object 2's OBJECT_DESIGNATOR"),
    _f("tca", TIME, "time of closest approach (UTC)"),
    _f("miss_distance_km", pa.float64(), "miss distance in the encounter plane (at the "
       "linear-motion TCA)", unit="km"),
    _f("hbr_m", pa.float64(), "combined hard-body radius used", unit="m"),
    _f("hbr_source", pa.string(), "where the HBR came from: option, cdm, cara-table"),
    _f("pc", pa.float64(), "probability of collision; null when it cannot be computed"),
    _f("pc_method", pa.string(), "foster, foster-square, foster-square-equal-area, chan, "
       "alfano2005", nullable=False),
    _f("pc_flags", pa.list_(pa.string()), "what happened (npd-remediated, zero-miss, ...)",
       nullable=False),
    _f("cdm_pc", pa.float64(), "COLLISION_PROBABILITY stated in the CDM, for comparison"),
    _f("error", pa.string(), "why the file could not be used (then pc is null)"),
], metadata={"table": "pc_results"})

#: One row per measurement (``ssafuse.formats.optical``, ``tdm``, declarative feeds). Angles are
#: as the sensor reported them: ``ra_deg`` / ``dec_deg`` topocentric, referred to ``frame``;
#: ``az_deg`` / ``el_deg`` topocentric horizontal (azimuth from north through east).
OBSERVATION_FIELDS = [
    _f("obs_id", pa.string(), "observation id: the feed's own id where it has one, else "
       "source:sha256[:12]:record", nullable=False),
    _f("time", TIME, "time of the measurement (UTC; TDM time systems converted)",
       nullable=False),
    _f("sensor_id", pa.string(), "sensor / observing site as the feed names it (COSPAR site "
       "number, TDM participant, UDL idSensor)", nullable=False),
    _f("object_id", pa.int64(), "NORAD number the observer reported; null when none"),
    _f("intl_designator", pa.string(), "COSPAR designator the observer reported, YYYY-NNNPPP"),
    _f("kind", pa.string(), "optical | radar | laser | rf", nullable=False),
    _f("ra_deg", pa.float64(), "right ascension (topocentric, in `frame`)", unit="deg"),
    _f("dec_deg", pa.float64(), "declination (topocentric, in `frame`)", unit="deg"),
    _f("az_deg", pa.float64(), "azimuth, from north through east", unit="deg"),
    _f("el_deg", pa.float64(), "elevation", unit="deg"),
    _f("range_km", pa.float64(), "one-way range sensor to object", unit="km"),
    _f("range_rate_km_s", pa.float64(), "one-way range rate", unit="km/s"),
    _f("angle_sigma_deg", pa.float64(), "1-sigma uncertainty of each angle", unit="deg"),
    _f("range_sigma_km", pa.float64(), "1-sigma uncertainty of range", unit="km"),
    _f("range_rate_sigma_km_s", pa.float64(), "1-sigma uncertainty of range rate",
       unit="km/s"),
    _f("time_sigma_s", pa.float64(), "1-sigma uncertainty of the time", unit="s"),
    _f("magnitude", pa.float64(), "visual magnitude", unit="mag"),
    _f("magnitude_sigma", pa.float64(), "magnitude uncertainty", unit="mag"),
    _f("frame", pa.string(), "reference of ra/dec: J2000 (=EME2000/ICRF, to arcsec level), "
       "B1950, B1855, B1875, B1900, J2050 (mean equator and equinox of that epoch), OF-DATE "
       "(true equator and equinox of date); of az/el: AZEL (geometric elevation) or "
       "AZEL-APPARENT (elevation not corrected for refraction)"),
    _f("station_status", pa.string(), "IOD station status / sky condition code"),
    _f("behaviour", pa.string(), "optical behaviour code (IOD, UK, RDE)"),
    _f("flash_period_s", pa.float64(), "flash period", unit="s"),
    _f("uct", pa.bool_(), "the feed itself flagged the observation as uncorrelated"),
]

OBSERVATIONS = pa.schema(OBSERVATION_FIELDS + PROVENANCE_FIELDS + MARKING_FIELDS,
                         metadata={"table": "observations"})

#: Columns an adapter may fill for an observation.
OBSERVATION_COLUMNS = tuple(f.name for f in OBSERVATION_FIELDS)

#: Observing sites (``ssafuse.sensors``): COSPAR site lists, TDM participants, a user's file.
SENSORS = pa.schema([
    _f("sensor_id", pa.string(), "site / sensor code as observations name it",
       nullable=False),
    _f("name", pa.string(), "observer or sensor name"),
    _f("latitude_deg", pa.float64(), "geodetic latitude (WGS84)", unit="deg",
       nullable=False),
    _f("longitude_deg", pa.float64(), "longitude, east positive", unit="deg",
       nullable=False),
    _f("altitude_km", pa.float64(), "height above the WGS84 ellipsoid", unit="km",
       nullable=False),
    _f("kind", pa.string(), "optical | radar | laser | rf, where known"),
    _f("owner", pa.string(), "owner / observer initials or agency"),
    _f("source_uri", pa.string(), "the site list the row was read from"),
], metadata={"table": "sensors"})

#: One row per observation correlated (``ssafuse.correlate``).
CORRELATIONS = pa.schema([
    _f("obs_id", pa.string(), "the observation", nullable=False),
    _f("time", TIME, "observation time (UTC)", nullable=False),
    _f("sensor_id", pa.string(), "the sensor", nullable=False),
    _f("source", pa.string(), "the observation's feed", nullable=False),
    _f("reported_object_id", pa.int64(), "NORAD number the observer reported"),
    _f("object_id", pa.int64(), "object assigned; null for a UCT"),
    _f("status", pa.string(), "correlated | uct | no-angles", nullable=False),
    _f("cross_tag", pa.bool_(), "reported object is catalogued but outside the gate while "
       "another object fits", nullable=False),
    _f("angle_residual_arcmin", pa.float64(), "great-circle angle observed - predicted of "
       "the assigned object (of the best candidate for a UCT)", unit="arcmin"),
    _f("ra_residual_arcsec", pa.float64(), "(RA obs - pred) * cos(dec), or azimuth * cos(el)",
       unit="arcsec"),
    _f("dec_residual_arcsec", pa.float64(), "dec obs - pred, or elevation", unit="arcsec"),
    _f("range_residual_km", pa.float64(), "range obs - pred", unit="km"),
    _f("range_rate_residual_km_s", pa.float64(), "range rate obs - pred", unit="km/s"),
    _f("score", pa.float64(), "normalised distance to the assigned object: angle residual / "
       "gate (plus range residual / range gate where range was measured); < 1 in the gate",
       unit="1"),
    _f("best_candidate_id", pa.int64(), "closest object whatever the gate"),
    _f("second_object_id", pa.int64(), "runner-up object"),
    _f("second_residual_arcmin", pa.float64(), "its angle residual", unit="arcmin"),
    _f("reported_residual_arcmin", pa.float64(), "angle residual of the reported object, "
       "where it is catalogued", unit="arcmin"),
    _f("n_in_gate", pa.int64(), "objects inside the gate", nullable=False),
    _f("element_epoch", TIME, "epoch of the element set used for the assigned object"),
    _f("element_age_days", pa.float64(), "observation time - element epoch", unit="day"),
    _f("gate_arcmin", pa.float64(), "angular gate used", unit="arcmin", nullable=False),
    _f("source_uri", pa.string(), "file the observation came from", nullable=False),
    _f("source_record", pa.int64(), "its record number in that file", nullable=False),
    _f("classification", pa.string(), "most restrictive of the observation's and the element "
       "set's", nullable=False),
    _f("releasable_to", pa.list_(pa.string()), "intersection of both releasabilities"),
    _f("marking", pa.string(), "the combined marking as text", nullable=False),
], metadata={"table": "correlations"})

#: Objects a screening left out: SGP4 refused the element set at init, or failed (decay, a
#: non-smooth solution) from some time on.
EXCLUDED = pa.schema([
    _f("object_id", pa.int64(), "NORAD catalogue number", nullable=False),
    _f("object_name", pa.string(), "name as received"),
    _f("error_code", pa.uint8(), "python-sgp4's error code (7 re-entered, 8 non-physical, "
       "9 not interpolable, 10 epoch too far from the window are ssafuse's)", nullable=False),
    _f("reason", pa.string(), "the code in words", nullable=False),
    _f("excluded_from", pa.timestamp("ns", tz="UTC"), "left out from this time on (the "
       "window start when SGP4 refused it at init)", nullable=False),
], metadata={"table": "excluded"})

#: One row per orbit-determination fit (``ssafuse.od``): the fitted element set (also a row of
#: ``elements`` with the OD source when it converged), how good it is, what it used, and its
#: covariance. Element columns are null when the fit did not converge (``status``, ``reason``).
_RESIDUAL_STAT = pa.struct([
    pa.field("sensor_id", pa.string()), pa.field("type", pa.string()),
    pa.field("n", pa.int64()), pa.field("rms", pa.float64()), pa.field("unit", pa.string())])
OD_SOLUTIONS = pa.schema(
    [_f("object_id", pa.int64(), "NORAD number (or analyst number of a new object)",
        nullable=False),
     _f("epoch", TIME, "epoch of the fitted set (the newest observation used), or the arc end "
        "when no fit", nullable=False)]
    + [pa.field(f.name, f.type, metadata=f.metadata) for f in ELEMENT_FIELDS
       if f.name in ("mean_motion_rev_day", "eccentricity", "inclination_deg", "raan_deg",
                     "arg_perigee_deg", "mean_anomaly_deg", "bstar")]
    + [_f("status", pa.string(), "converged | diverged | too-few | poorly-spread | failed",
          nullable=False),
       _f("reason", pa.string(), "why the fit was not accepted (empty when converged)",
          nullable=False),
       _f("uct", pa.bool_(), "a new object made from uncorrelated tracks", nullable=False),
       _f("bstar_fitted", pa.bool_(), "B* was fitted (else held at the start set's)",
          nullable=False),
       _f("n_obs_used", pa.int64(), "observations the fit used", nullable=False),
       _f("n_obs_rejected", pa.int64(), "observations left out as outliers", nullable=False),
       _f("iterations", pa.int64(), "least-squares iterations, all rounds", nullable=False),
       _f("chi2_reduced", pa.float64(), "sum of squared normalised residuals / dof", unit="1"),
       _f("rms_angle_arcsec", pa.float64(), "RMS of the angle residuals used", unit="arcsec"),
       _f("rms_range_km", pa.float64(), "RMS of the range residuals used", unit="km"),
       _f("rms_range_rate_km_s", pa.float64(), "RMS of the range-rate residuals used",
          unit="km/s"),
       _f("start_rms_angle_arcsec", pa.float64(), "the start element set's angle RMS on the "
          "same observations", unit="arcsec"),
       _f("start_rms_range_km", pa.float64(), "the start set's range RMS on them", unit="km"),
       _f("residuals", pa.list_(_RESIDUAL_STAT), "RMS per sensor and measurement type "
          "(angle arcsec, range km, range_rate km/s)"),
       _f("covariance", pa.list_(pa.float64()), "covariance of the fitted elements, row-major "
          "7x7 over mean_motion_rev_day, eccentricity, inclination_deg, raan_deg, "
          "arg_perigee_deg, mean_anomaly_deg, bstar (6x6 without bstar when not fitted)"),
       _f("covariance_rtn", pa.list_(pa.float64()), "position-velocity covariance at epoch, "
          "row-major 6x6 in the RTN frame (radial, transverse, normal), km and km/s"),
       _f("sigma_position_km", pa.float64(), "sqrt of the trace of the position covariance",
          unit="km"),
       _f("arc_start", TIME, "first observation of the arc"),
       _f("arc_end", TIME, "last observation of the arc"),
       _f("sensors", pa.list_(pa.string()), "sensors whose observations were used"),
       _f("obs_ids_used", pa.list_(pa.string()), "the observations used (as UDL's sourcedData)"),
       _f("obs_ids_rejected", pa.list_(pa.string()), "the observations left out"),
       _f("start_source", pa.string(), "source of the element set the fit started from"),
       _f("start_epoch", TIME, "its epoch")]
    + PROVENANCE_FIELDS + MARKING_FIELDS, metadata={"table": "od_solutions"})

SCHEMAS: dict[str, pa.Schema] = {
    "elements": ELEMENTS,
    "rejects": REJECTS,
    "catalogue": CATALOGUE,
    "conjunctions": CONJUNCTIONS,
    "cdms": CDMS,
    "pc_results": PC_RESULTS,
    "observations": OBSERVATIONS,
    "sensors": SENSORS,
    "correlations": CORRELATIONS,
    "excluded": EXCLUDED,
    "od_solutions": OD_SOLUTIONS,
}

#: Every table the store knows, including those later capabilities fill.
TABLES = ("elements", "rejects", "catalogue", "observations", "sensors", "correlations",
          "conjunctions", "cdms", "od_solutions")

#: Hive partition keys per table (directory levels, in order). Partition columns are not
#: repeated inside the Parquet files; the store adds them back when reading.
PARTITIONS: dict[str, tuple[str, ...]] = {
    "elements": ("source", "ingest_date"),
    "rejects": ("source", "ingest_date"),
    "catalogue": (),
    "conjunctions": (),
    "cdms": ("source", "ingest_date"),
    "pc_results": (),
    "observations": ("source", "ingest_date"),
    "sensors": (),
    "correlations": (),
    "od_solutions": (),
}


def empty(table: str) -> pa.Table:
    """An empty table with the canonical schema of ``table``."""
    return SCHEMAS[table].empty_table()


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly the columns of ``schema``, in its order and types; a column it
    lacks (a file written before that column was added) comes back as nulls."""
    for f in schema:
        if f.name not in table.column_names:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    return table.select(schema.names).cast(schema)
