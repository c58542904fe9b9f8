"""PRIV and OFF4 record layouts (spec §5 and §6), declared as data.

Every person record starts with RECTYPE (1-3) and PNR (4-13). Field names follow
the spec; where the spec repeats a name (``UMRK``), the name is qualified by the
field it marks. Adding a record type is adding a table here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from gateway.codec.layout import Layout, Row, date, digits, isodate, num, stamp, table, text
from gateway.model import Family

_HEAD = (digits("RECTYPE", 1, 3), digits("PNR", 4, 10))


def _lines(prefix: str, pos: int, count: int = 5, width: int = 34) -> tuple[Row, ...]:
    """``count`` consecutive text lines named prefix1..prefixN."""
    return tuple(text(f"{prefix}{i + 1}", pos + i * width, width) for i in range(count))


START = table(
    "000", 35, *_HEAD, digits("OPGAVENR", 14, 6), date("PRODDTO", 20), date("FORRIGE_PRODDTO", 28)
)
END = table("999", 21, *_HEAD, num("ANTAL", 14, 8))
CREDIT_WARNING = table(
    "050", 29, *_HEAD, digits("KREDITADVTYPE", 14, 4), stamp("KREDITADV_START", 18)
)

PRIV_LAYOUTS: Mapping[str, Layout] = MappingProxyType(
    {
        "000": START,
        "001": table(
            "001",
            469,
            *_HEAD,
            date("FOEDDTO", 14),
            text("KOEN", 22, 1),
            digits("STATUS", 23, 2),
            stamp("STATUSHAENSTART", 25),
            text("PNRGAELD", 37, 10),
            stamp("UMYNDIG_START", 47),
            stamp("TILFLYDTO", 59),
            stamp("NVNADRBESK_START", 71),
            text("STILLING", 83, 34),
            text("ADRNVN", 117, 34),
            text("CONVN", 151, 34),
            text("LOKALITET", 185, 34),
            text("STANDARDADR", 219, 34),
            text("BYNVN", 253, 34),
            num("POSTNR", 287, 4),
            text("POSTDISTTXT", 291, 20),
            num("KOMKOD", 311, 4),
            num("VEJKOD", 315, 4),
            text("HUSNR", 319, 4),
            text("ETAGE", 323, 2),
            text("SIDEDOER", 325, 4),
            text("BNR", 329, 4),
            text("FORNVN", 333, 50),
            text("EFTERNVN", 383, 40),
            text("VEJADRNVN", 423, 20),
            text("RESERVERET", 443, 15),
            stamp("REKBESK_START", 458),
        ),
        "002": table("002", 195, *_HEAD, *_lines("UDLANDADR", 14), stamp("UDLANDADR_DTO", 184)),
        "003": table("003", 195, *_HEAD, *_lines("KONTAKTADR", 14), stamp("KONTAKTADR_DTO", 184)),
        "004": table("004", 26, *_HEAD, text("CIVST", 14, 1), stamp("CIVST_START", 15)),
        "005": table("005", 217, *_HEAD, text("VAERGE_ADRNVN", 14, 34), *_lines("VAERGEADR", 48)),
        "011": table("011", 88, *_HEAD, *_lines("KUNDEREF", 14, width=15)),
        "050": CREDIT_WARNING,
        "999": END,
    }
)

OFF4_LAYOUTS: Mapping[str, Layout] = MappingProxyType(
    {
        "000": START,
        "001": table(
            "001",
            106,
            *_HEAD,
            text("PNRGAELD", 14, 10),
            digits("STATUS", 24, 2),
            stamp("STATUSHAENSTART", 26),
            text("STATUSHAENSTART_UMRK", 38, 1),
            text("KOEN", 39, 1),
            isodate("FOED_DT", 40),
            text("FOED_DT_UMRK", 50, 1),
            isodate("START_DT_PERSON", 51),
            text("START_DT_PERSON_UMRK", 61, 1),
            isodate("SLUT_DT_PERSON", 62),
            text("SLUT_DT_PERSON_UMRK", 72, 1),
            text("STILLING", 73, 34),
        ),
        "002": table(
            "002",
            306,
            *_HEAD,
            num("KOMKOD", 14, 4),
            num("VEJKOD", 18, 4),
            text("HUSNR", 22, 4),
            text("ETAGE", 26, 2),
            text("SIDEDOER", 28, 4),
            text("BNR", 32, 4),
            text("CONVN", 36, 34),
            stamp("TILFLYDTO", 70),
            text("TILFLYDTO_UMRK", 82, 1),
            stamp("TILFLYKOMDTO", 83),
            text("TILFLYKOMDTO_UMRK", 95, 1),
            num("FRAFLYKOMKOD", 96, 4),
            stamp("FRAFLYKOMDTO", 100),
            text("FRAFLYKOMDTO_UMRK", 112, 1),
            num("START_MYNKOD_ADRTXT", 113, 4),
            *_lines("SUPLADR", 117),
            isodate("START_DT_ADRTXT", 287),
            isodate("SLET_DT_ADRTXT", 297),
        ),
        "003": table(
            "003",
            249,
            *_HEAD,
            text("ADRNVN", 14, 34),
            text("CONVN", 48, 34),
            text("LOKALITET", 82, 34),
            text("STANDARDADR", 116, 34),
            text("BYNVN", 150, 34),
            num("POSTNR", 184, 4),
            text("POSTDISTTXT", 188, 20),
            num("KOMKOD", 208, 4),
            num("VEJKOD", 212, 4),
            text("HUSNR", 216, 4),
            text("ETAGE", 220, 2),
            text("SIDEDOER", 222, 4),
            text("BNR", 226, 4),
            text("VEJADRNVN", 230, 20),
        ),
        "004": table(
            "004",
            37,
            *_HEAD,
            digits("BESKYTTYPE", 14, 4),
            isodate("START_DT", 18),
            isodate("SLET_DT", 28),
        ),
        "005": table(
            "005",
            200,
            *_HEAD,
            digits("UDR_LANDEKOD", 14, 4),
            stamp("UDRDTO", 18),
            text("UDRDTO_UMRK", 30, 1),
            *_lines("UDLANDADR", 31),
        ),
        "006": table(
            "006",
            203,
            *_HEAD,
            *_lines("KONTAKTADR", 14),
            isodate("START_DT", 184),
            isodate("SLET_DT", 194),
        ),
        "007": table("007", 26, *_HEAD, stamp("FORSVINDDTO", 14), text("FORSVINDDTO_UMRK", 26, 1)),
        "008": table(
            "008",
            193,
            *_HEAD,
            text("FORNVN", 14, 50),
            text("FORNVN_MRK", 64, 1),
            text("MELNVN", 65, 40),
            text("MELNVN_MRK", 105, 1),
            text("EFTERNVN", 106, 40),
            text("EFTERNVN_MRK", 146, 1),
            stamp("NVNHAENSTART", 147),
            text("NVNHAENSTART_UMRK", 159, 1),
            text("ADRNVN", 160, 34),
        ),
        "009": table(
            "009",
            37,
            *_HEAD,
            num("START_MYNKOD_FOEDESTED", 14, 4),
            text("MYNTXT_FOEDESTED", 18, 20),
        ),
        "010": table(
            "010",
            30,
            *_HEAD,
            digits("LANDEKOD", 14, 4),
            stamp("HAENSTART", 18),
            text("HAENSTART_UMRK", 30, 1),
        ),
        "011": table(
            "011", 25, *_HEAD, text("FKIRK", 14, 1), isodate("START_DT", 15), text("UMRK", 25, 1)
        ),
        "012": table(
            "012",
            95,
            *_HEAD,
            text("CIVST", 14, 1),
            digits("AEGTEPNR", 15, 10),
            isodate("AEGTEFOED_DT", 25),
            text("AEGTEFOED_DT_UMRK", 35, 1),
            text("AEGTENVN", 36, 34),
            text("AEGTENVN_MRK", 70, 1),
            stamp("HAENSTART", 71),
            text("HAENSTART_UMRK", 83, 1),
            text("SEP_HENVIS", 84, 12),
        ),
        "013": table(
            "013",
            36,
            *_HEAD,
            text("SEP_HENVIS", 14, 12),
            isodate("START_DT", 26),
            text("START_DT_UMRK", 36, 1),
        ),
        "014": table("014", 23, *_HEAD, digits("BARN_PNR", 14, 10)),
        "015": table(
            "015",
            147,
            *_HEAD,
            isodate("MOR_DT", 14),
            text("MOR_DT_UMRK", 24, 1),
            digits("PNRMOR", 25, 10),
            isodate("MOR_FOED_DT", 35),
            text("MOR_FOED_DT_UMRK", 45, 1),
            text("MORNVN", 46, 34),
            text("MORNVN_MRK", 80, 1),
            isodate("FAR_DT", 81),
            text("FAR_DT_UMRK", 91, 1),
            digits("PNRFAR", 92, 10),
            isodate("FAR_FOED_DT", 102),
            text("FAR_FOED_DT_UMRK", 112, 1),
            text("FARNVN", 113, 34),
            text("FARNVN_MRK", 147, 1),
        ),
        "016": table(
            "016",
            58,
            *_HEAD,
            digits("RELTYP", 14, 4),
            isodate("START_DT", 18),
            text("START_DT_UMRK", 28, 1),
            isodate("SLET_DT", 29),
            digits("RELPNR", 39, 10),
            isodate("START_DT_RELPNR", 49),
        ),
        "017": table(
            "017",
            272,
            *_HEAD,
            isodate("START_DT", 14),
            text("START_DT_UMRK", 24, 1),
            isodate("SLET_DT", 25),
            digits("UMYN_RELTYP", 35, 4),
            digits("RELPNR", 39, 10),
            isodate("START_DT_RELPNR", 49),
            text("VAERGE_NAVN", 59, 34),
            isodate("START_DT_RELPNR_TXT", 93),
            *_lines("RELTXT", 103),
        ),
        "018": table(
            "018",
            60,
            *_HEAD,
            text("KOMFORHTYP", 14, 1),
            text("KOMFORHKOD", 15, 5),
            isodate("START_DT", 20),
            text("START_DT_UMRK", 30, 1),
            text("BEMAERK", 31, 30),
        ),
        "019": table(
            "019",
            75,
            *_HEAD,
            digits("NOTATNR", 14, 2),
            text("NOTATLINIE", 16, 40),
            isodate("START_DT", 56),
            isodate("SLET_DT", 66),
        ),
        "020": table(
            "020",
            47,
            *_HEAD,
            digits("VALGKODE", 14, 4),
            isodate("VALGRET_DT", 18),
            isodate("START_DT", 28),
            isodate("SLET_DT", 38),
        ),
        "050": CREDIT_WARNING,
        "999": END,
    }
)

LAYOUTS: Mapping[Family, Mapping[str, Layout]] = MappingProxyType(
    {Family.PRIV: PRIV_LAYOUTS, Family.OFF4: OFF4_LAYOUTS}
)
