"""Word lists the synthetic register draws from: names, roads, places, countries.

Every entry is printable Latin-1 and fits the field it lands in. Danish letters
(æ ø å Æ Ø Å) and accented ones (é ü ä ö) are here on purpose: clients and
backends must carry them through unchanged. Codes are illustrative, not an
official code list.
"""

from __future__ import annotations

MALE_FIRST = (
    "Peter", "Jens", "Lars", "Michael", "Henrik", "Søren", "Thomas", "Niels", "Anders",
    "Rasmus", "Mads", "Christian", "Jørgen", "Frederik", "Mikkel", "Bjørn", "Jesper", "Ole",
    "Poul", "Hans", "Knud", "Asger", "Jørn", "Bent", "Emil", "Oliver", "Noah", "Malthe",
    "Aksel", "Valdemar", "René", "André", "Jørgen", "Ægidius", "Øjvind", "Åge", "Jürgen",
    "Hans-Christian", "Carl", "Viggo",
)  # fmt: skip

FEMALE_FIRST = (
    "Anne", "Kirsten", "Mette", "Hanne", "Helle", "Lene", "Susanne", "Marianne", "Inge",
    "Karen", "Bodil", "Birthe", "Grethe", "Ida", "Emma", "Freja", "Clara", "Sofie", "Ellen",
    "Agnes", "Astrid", "Åse", "Sørine", "Maja", "Zoë", "Chloé", "Renée", "Hélène",
    "Lærke", "Signe", "Jytte", "Dorthe", "Bénédicte", "Ærtrud", "Øllegård", "Anne-Sophie",
    "Karoline", "Nanna", "Märta", "Ulla", "Björg",
)  # fmt: skip

MIDDLE = (
    "Marie", "Louise", "Kristine", "Bach", "Holm", "Skov", "Krogh", "Dam", "Bøgh", "Lykke",
    "Munk", "Juul", "Kjær", "Brøndum", "Lund", "Elisabeth", "Emil", "August", "Østergaard",
    "Dalgård", "Valdemar", "Frederik", "Højer", "Müller",
)  # fmt: skip

LAST = (
    "Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen",
    "Sørensen", "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen",
    "Thomsen", "Poulsen", "Johansen", "Møller", "Mortensen", "Østergaard", "Kjærgaard",
    "Bøgelund", "Müller", "Schäfer", "Öztürk", "Søgaard", "Åberg", "Bech-Jørgensen",
    "Damgaard", "Frølich", "Brønnum", "Løvgreen", "Håkonsen", "Rüdiger", "Ærenlund",
    "Lefèvre", "Nørgaard", "Bjørnskov", "Villadsen", "Dahl", "Söderberg",
)  # fmt: skip

#: Long name parts, used now and then so that ADRNVN must be abbreviated.
LONG_FIRST = ("Hans-Christian", "Anne-Margrethe", "Karl-Frederik", "Marie-Louise")
LONG_MIDDLE = ("Valdemar Frederik", "Elisabeth Kristine", "Østergaard Brøndum")
LONG_LAST = ("Christoffersen-Østergaard", "Schou-Kjærgaard-Bøgelund", "Rosenkrantz-Ærenlund")

#: Road name and its addressing name (VEJADRNVN, at most 20 characters).
ROADS = (
    ("Boulevarden", "Boulevarden"),
    ("Industrivænget", "Industrivænget"),
    ("Strandvejen", "Strandvejen"),
    ("Ahlefeldtsgade", "Ahlefeldtsgade"),
    ("Østerbrogade", "Østerbrogade"),
    ("Nørrebrogade", "Nørrebrogade"),
    ("Åboulevarden", "Åboulevarden"),
    ("Søndergade", "Søndergade"),
    ("Kærvej", "Kærvej"),
    ("Bøgevej", "Bøgevej"),
    ("Æblehaven", "Æblehaven"),
    ("Møllevænget", "Møllevænget"),
    ("Ørstedsvej", "Ørstedsvej"),
    ("Frederiksberg Allé", "Frederiksberg Allé"),
    ("Rüdinger Allé", "Rüdinger Allé"),
    ("Café Allé", "Café Allé"),
    ("Niels Juels Gade", "Niels Juels Gade"),
    ("H.C. Andersens Boulevard", "H.C. Andersens Blvd."),
    ("Kong Frederik den Syvendes Gade", "Kong Fr. VII's Gade"),
    ("Dronning Olgas Vej", "Dronning Olgas Vej"),
    ("Sankt Hans Gade", "Sankt Hans Gade"),
    ("Hvidkløvervej", "Hvidkløvervej"),
    ("Vesterbrogade", "Vesterbrogade"),
    ("Ærøvej", "Ærøvej"),
    ("Grønnegade", "Grønnegade"),
)

GREENLAND_ROADS = (
    ("Aqqusinersuaq", "Aqqusinersuaq"),
    ("Qullilerfik", "Qullilerfik"),
    ("Issortarfimmut", "Issortarfimmut"),
    ("Imaneq", "Imaneq"),
    ("Nuussuaq", "Nuussuaq"),
)

#: Road names on special road codes 9900-9999 (no house number).
SPECIAL_ROADS = ("Uden fast bopæl", "Ombord på skib", "Institution uden vejnavn")

#: (municipality code, municipality name, ((post code, district), ...)).
MUNICIPALITIES = (
    (101, "København", ((1150, "København K"), (2100, "København Ø"), (2200, "København N"))),
    (147, "Frederiksberg", ((1850, "Frederiksberg C"), (2000, "Frederiksberg"))),
    (157, "Gentofte", ((2900, "Hellerup"), (2820, "Gentofte"))),
    (265, "Roskilde", ((4000, "Roskilde"),)),
    (370, "Næstved", ((4700, "Næstved"),)),
    (400, "Bornholm", ((3700, "Rønne"), (3790, "Hasle"))),
    (461, "Odense", ((5000, "Odense C"), (5230, "Odense M"))),
    (492, "Ærø", ((5970, "Ærøskøbing"), (5960, "Marstal"))),
    (550, "Tønder", ((6270, "Tønder"),)),
    (561, "Esbjerg", ((6700, "Esbjerg"), (6710, "Esbjerg V"))),
    (630, "Vejle", ((7100, "Vejle"),)),
    (657, "Herning", ((7400, "Herning"),)),
    (751, "Aarhus", ((8000, "Aarhus C"), (8200, "Aarhus N"), (8260, "Viby J"))),
    (791, "Viborg", ((8800, "Viborg"),)),
    (813, "Frederikshavn", ((9900, "Frederikshavn"), (9990, "Skagen"))),
    (851, "Aalborg", ((9000, "Aalborg"), (9220, "Aalborg Øst"))),
)

GREENLAND_MUNICIPALITIES = (
    (956, "Sermersooq", ((3900, "Nuuk"),)),
    (957, "Qeqqata", ((3911, "Sisimiut"),)),
    (959, "Kujalleq", ((3920, "Qaqortoq"),)),
    (960, "Avannaata", ((3952, "Ilulissat"),)),
)

#: Supplementary town names (BYNVN) and localities.
TOWNS = ("Øster Hurup", "Sønder Bjert", "Ålsgårde", "Vindum", "Hjortshøj", "Lystrup")
LOCALITIES = ("Nørre Vium Mark", "Skovgården", "Engbakken", "Bøgeskov Strand")

#: (country code, country line, street lines, city lines) for foreign addresses.
COUNTRIES = (
    ("5110", "NORGE", ("Karl Johans gate 12", "Bygdøy allé 5"), ("0154 Oslo", "0257 Oslo")),
    ("5120", "SVERIGE", ("Drottninggatan 88", "Götgatan 14"), ("111 36 Stockholm",)),
    ("5180", "TYSKLAND", ("Königstraße 7", "Schloßstraße 21"), ("70173 Stuttgart",)),
    ("5130", "FRANKRIG", ("Rue de la Paix 5", "Allée des Érables 9"), ("75002 Paris",)),
    ("5134", "SPANIEN", ("Calle de Alcalá 42",), ("28014 Madrid",)),
    ("5170", "STORBRITANNIEN", ("221B Baker Street",), ("London NW1 6XE",)),
    ("5390", "USA", ("350 Fifth Avenue",), ("New York NY 10118",)),
)

OCCUPATIONS = (
    "", "", "", "Skolelærer", "Sygeplejerske", "Pensionist", "Elev", "Tømrer", "Læge",
    "Ingeniør", "Pædagog", "Kontorassistent", "Selvstændig erhvervsdrivende", "Studerende",
    "Førtidspensionist", "Chauffør", "Økonom", "Kok", "Frisør", "Social- og sundhedsassistent",
)  # fmt: skip

PROFESSIONAL_GUARDIANS = (
    ("Advokat Jens Ørum", ("Advokatfirmaet Ørum", "Vestergade 3", "8000 Aarhus C")),
    ("Advokat Hélène Bøgh", ("Bøgh & Partnere", "Amagertorv 11, 2.", "1160 København K")),
    ("Familieretshuset", ("Familieretshuset", "Postboks 999", "6300 Gråsten")),
)

CONTACT_LINES = (
    ("c/o Advokatfirmaet Ørum", "Postboks 123", "8000 Aarhus C"),
    ("Sømandshjemmet", "Nyhavn 22", "1051 København K"),
    ("c/o Søster Åse Lund", "Grønnegade 4", "5000 Odense C"),
)

CONDITION_REMARKS = ("Plejebolig", "Midlertidigt ophold", "Særlig støtte efter § 85")
NOTE_LINES = (
    "Personen er registreret efter dom",
    "Oplysning om navn afventer dokumentation",
    "Adresse oplyst af kommunen",
    "Henvendelse om fødested, se sag 2019-113",
)
