"""Build ``sample_tles/udl_elset_sample.json``: real CelesTrak element sets in the shape of
Unified Data Library ElSet records, as a partner would export them.

Input: CelesTrak GP OMM-JSON of 2025-05-24 (carbform/carbsat, data/stations.json and
data/weather.json, Unlicense), copied into ``../shared/data/catalogues/celestrak_gp_json_20250524``.
Output: a JSON list of ``--count`` records (all of stations.json, then weather.json in file
order). Element values are copied unchanged (JSON numbers written back with Python's shortest
repr, so ``float`` reads back the very same double); the epoch gains the ``Z`` UDL writes.
``line1``/``line2`` are the same elements exported by python-sgp4 (``sgp4.exporter``).
A few records get a releasability caveat in ``classificationMarking``, as a partner feed's
would; the rest are ``U``. Each record says where it came from: ``rawFileUri`` is
``<input file>#<0-based index>`` and ``descriptor`` names this script.

    python sample_tles/make_udl_sample.py [--data ../shared/data] [--count 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import uuid
from pathlib import Path

from sgp4 import exporter, omm
from sgp4.api import Satrec

ROOT = Path(__file__).resolve().parents[1]
INPUTS = ("stations.json", "weather.json")
SUBDIR = "catalogues/celestrak_gp_json_20250524"
#: Markings given to records by position in the output; the rest get "U".
MARKINGS = {
    2: "UNCLASSIFIED//REL TO USA, GBR, AUS",
    5: "UNCLASSIFIED//REL TO USA, FVEY",
    9: "UNCLASSIFIED",
    13: "UNCLASSIFIED//REL TO USA, GBR, AUS",
    17: "U//REL TO USA, FVEY",
}
DESCRIPTOR = ("sample made by sample_tles/make_udl_sample.py from CelesTrak GP OMM-JSON "
              "2025-05-24 (carbform/carbsat, Unlicense)")


def tle_lines(gp: dict) -> tuple[str, str]:
    sat = Satrec()
    omm.initialize(sat, gp)
    return exporter.export_tle(sat)


def udl_record(gp: dict, index: int, src_name: str, src_index: int) -> dict:
    line1, line2 = tle_lines(gp)
    return {
        "idElset": str(uuid.uuid5(uuid.NAMESPACE_URL,
                                  f"celestrak:{gp['NORAD_CAT_ID']}:{gp['EPOCH']}")),
        "classificationMarking": MARKINGS.get(index, "U"),
        "satNo": gp["NORAD_CAT_ID"],
        "epoch": gp["EPOCH"] + "Z",
        "meanMotion": gp["MEAN_MOTION"],
        "eccentricity": gp["ECCENTRICITY"],
        "inclination": gp["INCLINATION"],
        "raan": gp["RA_OF_ASC_NODE"],
        "argOfPerigee": gp["ARG_OF_PERICENTER"],
        "meanAnomaly": gp["MEAN_ANOMALY"],
        "bStar": gp["BSTAR"],
        "meanMotionDot": gp["MEAN_MOTION_DOT"],
        "meanMotionDDot": gp["MEAN_MOTION_DDOT"],
        "revNo": gp["REV_AT_EPOCH"],
        "elsetNo": gp["ELEMENT_SET_NO"],
        "ephemType": gp["EPHEMERIS_TYPE"],
        "idOnOrbit": str(gp["NORAD_CAT_ID"]),
        "line1": line1,
        "line2": line2,
        "source": "CelesTrak",
        "origin": "CELESTRAK_GP",
        "dataMode": "REAL",
        "uct": False,
        "rawFileUri": f"{SUBDIR}/{src_name}#{src_index}",
        "descriptor": DESCRIPTOR,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--out", type=Path, default=ROOT / "sample_tles" / "udl_elset_sample.json")
    args = ap.parse_args()
    records = []
    for name in INPUTS:
        path = args.data / SUBDIR / name
        data = path.read_bytes()
        print(f"input  {SUBDIR}/{name}  sha256 {hashlib.sha256(data).hexdigest()}")
        for i, gp in enumerate(json.loads(data)):
            if len(records) < args.count:
                records.append(udl_record(gp, len(records), name, i))
    text = "[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n"
    args.out.write_text(text, encoding="utf-8")
    print(f"output {args.out.name}  {len(records)} records  "
          f"sha256 {hashlib.sha256(text.encode()).hexdigest()}")


if __name__ == "__main__":
    main()
