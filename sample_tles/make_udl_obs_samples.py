"""Build ``sample_tles/udl_eo_obs_sample.json`` and ``sample_tles/udl_radar_obs_sample.json``:
real observations in the shape of Unified Data Library EOObservation and RadarObservation
records, as a partner would export them.

Inputs (all under ``../shared/data``):

* EO: real IOD observations of scottcampbell-satfit (interplanetarychris/scottcampbell-satfit,
  MISC/SATS.zip, MIT), ``observations/satfit/sats/NNNNN.txt``, read with ssafuse's IOD reader
  (``iod-lenient``); the first ``--eo-per-file`` observations in J2000 RA/Dec of each of the
  first ``--eo-files`` files (sorted by name) that have any. Sites from satfit's own
  ``observations/sites/scottcampbell-satfit_STATIONS.IN`` (senlat / senlon / senalt).
* Radar: real Eutelsat W3B ground-station measurements (Orekit, Apache-2.0, "real flight data",
  Telespazio 2011), ``observations/orekit/orbit-determination/W3B/W3B.aer``: its first
  ``--radar-count`` RANGE (km) and AZ_EL (deg) lines in file order; sigmas from
  ``od_test_W3.in`` beside it. No sensor position: the UDL RadarObservation has no
  senlat / senlon / senalt (only senx / seny / senz in senReferenceFrame; see
  ``tests/data/udl/``), and the site comes from the sensors table. The file names no
  catalogue number: ``satNo`` is 37206, the catalogue entry ``EUTE W3B`` (1 37206U 10056A) in
  ``catalogues/spacetrack_3le_2023-10-09_cdm_on_chain.txt``.

Values are copied unchanged (Python's shortest float repr, so ``float`` reads back the very
same double); ``obTime`` is the observation time to the nanosecond with a ``Z``. Each record
names its source line in ``rawFileUri`` (``<path under ../shared/data>#L<line>``) and this
script in ``descriptor``. ``classificationMarking`` is ``U`` (illustrative, set here).

    python sample_tles/make_udl_obs_samples.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SATFIT = "observations/satfit/sats"
STATIONS = "observations/sites/scottcampbell-satfit_STATIONS.IN"
W3B = "observations/orekit/orbit-determination/W3B/W3B.aer"
W3B_IN = "observations/orekit/orbit-determination/W3B/od_test_W3.in"
W3B_NORAD = 37206
DESCRIPTOR = "sample made by sample_tles/make_udl_obs_samples.py"


def eo_records(data: Path, files: int, per_file: int) -> list[dict]:
    from ssafuse.timeutil import format_epoch
    from ssafuse.formats.optical import parse_iod_line
    from ssafuse.errors import FormatError
    from ssafuse.sensors import lookup, read_sensors

    sites = lookup(read_sensors(data / STATIONS))
    out = []
    used = 0
    for path in sorted((data / SATFIT).glob("*.txt")):
        lines = path.read_text(encoding="latin-1").splitlines()
        taken = 0
        for number, line in enumerate(lines, 1):
            if taken >= per_file:
                break
            try:
                rec = parse_iod_line(line, number, lenient=True)
            except FormatError:
                continue
            if rec["frame"] != "J2000" or rec["ra_deg"] is None or rec["sensor_id"] not in sites:
                continue
            lat, lon, alt = sites[rec["sensor_id"]]
            item = {
                "id": f"satfit-{path.stem}-L{number}",
                "classificationMarking": "U",
                "obTime": format_epoch(rec["time"]) + "Z",
                "idSensor": rec["sensor_id"],
                "satNo": rec["object_id"],
                "ra": rec["ra_deg"],
                "declination": rec["dec_deg"],
                "uct": False,
                "senlat": lat, "senlon": lon, "senalt": alt,
                "referenceFrame": "J2000",
                "source": "satfit",
                "dataMode": "REAL",
                "rawFileUri": f"{SATFIT}/{path.name}#L{number}",
                "descriptor": DESCRIPTOR,
            }
            if rec["angle_sigma_deg"] is not None:
                item["raUnc"] = rec["angle_sigma_deg"]
            if rec["magnitude"] is not None:
                item["mag"] = rec["magnitude"]
            out.append(item)
            taken += 1
        used += taken > 0
        if used >= files:
            break
    return out


def w3b_stations(data: Path) -> dict[str, dict]:
    values: dict[tuple[str, int], str] = {}
    for line in (data / W3B_IN).read_text().splitlines():
        m = re.match(r"\s*ground\.station\.([a-z.]+)\s*\[(\d+)\]\s*=\s*(\S+)", line)
        if m:
            values[(m[1], int(m[2]))] = m[3]
    out = {}
    for (key, i), name in values.items():
        if key == "name":
            out[name] = {"range_sigma_km": float(values[("range.sigma", i)]) / 1000.0,
                         "az_sigma_deg": float(values[("azimuth.sigma", i)]),
                         "el_sigma_deg": float(values[("elevation.sigma", i)])}
    return out


def radar_records(data: Path, count: int) -> list[dict]:
    stations = w3b_stations(data)
    out = []
    for number, line in enumerate((data / W3B).read_text().splitlines(), 1):
        if len(out) >= count:
            break
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        time, kind, station = parts[:3]
        st = stations[station]
        item = {"id": f"w3b-L{number}", "classificationMarking": "U", "obTime": time + "Z",
                "idSensor": station, "satNo": W3B_NORAD, "uct": False}
        if kind == "RANGE":
            item.update(range=float(parts[3]), rangeUnc=st["range_sigma_km"])
        elif kind == "AZ_EL":
            item.update(azimuth=float(parts[3]), elevation=float(parts[4]),
                        azimuthUnc=st["az_sigma_deg"], elevationUnc=st["el_sigma_deg"])
        else:
            raise ValueError(f"{W3B} line {number}: unknown measurement {kind}")
        item.update(source="orekit-w3b", dataMode="REAL", rawFileUri=f"{W3B}#L{number}",
                    descriptor=DESCRIPTOR)
        out.append(item)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--eo-files", type=int, default=10)
    ap.add_argument("--eo-per-file", type=int, default=4)
    ap.add_argument("--radar-count", type=int, default=40)
    args = ap.parse_args(argv)
    for name, records in (
            ("udl_eo_obs_sample.json", eo_records(args.data, args.eo_files, args.eo_per_file)),
            ("udl_radar_obs_sample.json", radar_records(args.data, args.radar_count))):
        text = json.dumps(records, indent=1, ensure_ascii=True) + "\n"
        (ROOT / "sample_tles" / name).write_text(text)
        print(f"{name}: {len(records)} records")


if __name__ == "__main__":
    main()
