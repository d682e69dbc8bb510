"""Reference tables the generator draws from: cancer sites, hotspot variants, drugs, scanners,
hospitals and names.

Kept apart from the generator so that tests (and readers checking the biology) can read the
facts in one place. Coordinates are GRCh38, 1-based, alleles on the forward strand; HGVS on
the Ensembl canonical transcript named in each row.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Cancer sites
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Morphology:
    """An ICD-O-3 histology code with its label and relative frequency within the site."""

    code: str
    label: str
    weight: float


@dataclass(frozen=True)
class Imaging:
    """One kind of exam done for a site: modality, body part and series descriptions."""

    modality: str
    body_part: str
    body_part_snomed: str
    study_description: str
    series: tuple[str, ...]
    slice_thickness: float
    probability: float


@dataclass(frozen=True)
class CancerSite:
    """What the generator needs to make a plausible patient with this cancer."""

    key: str
    label: str
    weight: float
    p_male: float
    age_mean: float
    age_sd: float
    age_min: int
    age_max: int
    icd10: tuple[str, ...]
    snomed: str
    body_site_snomed: str
    morphologies: tuple[Morphology, ...]
    stage_weights: tuple[float, float, float, float]
    survival_factor: float
    imaging: tuple[Imaging, ...]
    drivers: tuple[tuple[str, float], ...]
    co_mutations: tuple[tuple[str, float], ...]


_CT_CHEST = Imaging(
    "CT", "CHEST", "39607008", "CT THORAX WITH CONTRAST", ("THORAX 1.25mm", "LUNG 1mm"), 1.25, 1.0
)
_PET_CT = Imaging(
    "PT",
    "WHOLEBODY",
    "38266002",
    "PET-CT FDG WHOLE BODY",
    ("PET WB AC", "CT WB LOW DOSE"),
    3.0,
    0.25,
)
_CT_ABD = Imaging(
    "CT",
    "ABDOMEN",
    "818981001",
    "CT ABDOMEN PELVIS PORTAL VENOUS",
    ("ABD-PEL PV 3mm", "ABD-PEL PV 1mm"),
    3.0,
    1.0,
)
_CT_CAP = Imaging(
    "CT", "CHEST", "39607008", "CT CHEST ABDOMEN PELVIS STAGING", ("CAP 3mm",), 3.0, 1.0
)

SITES: tuple[CancerSite, ...] = (
    CancerSite(
        "lung",
        "Malignant neoplasm of bronchus and lung",
        0.18,
        0.60,
        69,
        9,
        35,
        95,
        ("C34.1", "C34.1", "C34.3", "C34.2", "C34.9"),
        "363358000",
        "39607008",
        (
            Morphology("8140/3", "Adenocarcinoma, NOS", 0.50),
            Morphology("8070/3", "Squamous cell carcinoma, NOS", 0.28),
            Morphology("8041/3", "Small cell carcinoma, NOS", 0.14),
            Morphology("8012/3", "Large cell carcinoma, NOS", 0.08),
        ),
        (0.22, 0.08, 0.20, 0.50),
        0.5,
        (_CT_CHEST, _PET_CT),
        (
            ("KRAS_G12C", 0.13),
            ("KRAS_G12D", 0.04),
            ("KRAS_G12V", 0.06),
            ("EGFR_L858R", 0.06),
            ("BRAF_V600E", 0.02),
        ),
        (
            ("TP53_R273H", 0.05),
            ("TP53_R175H", 0.03),
            ("TP53_R248Q", 0.03),
            ("EGFR_T790M", 0.01),
            ("PIK3CA_E545K", 0.02),
        ),
    ),
    CancerSite(
        "breast",
        "Malignant neoplasm of breast",
        0.22,
        0.01,
        62,
        13,
        25,
        95,
        ("C50.4", "C50.4", "C50.2", "C50.8", "C50.9"),
        "254837009",
        "76752008",
        (
            Morphology("8500/3", "Infiltrating duct carcinoma, NOS", 0.78),
            Morphology("8520/3", "Lobular carcinoma, NOS", 0.15),
            Morphology("8480/3", "Mucinous adenocarcinoma", 0.07),
        ),
        (0.45, 0.35, 0.13, 0.07),
        1.8,
        (
            Imaging(
                "MG",
                "BREAST",
                "76752008",
                "MAMMOGRAPHY BILATERAL DIAGNOSTIC",
                ("L CC", "L MLO", "R CC", "R MLO"),
                0.0,
                1.0,
            ),
            Imaging(
                "MR",
                "BREAST",
                "76752008",
                "MR BREAST BILATERAL DYNAMIC",
                ("T1 FL3D DYN", "T2 TSE", "DWI b800"),
                1.5,
                0.5,
            ),
            _CT_CAP,
        ),
        (
            ("PIK3CA_H1047R", 0.15),
            ("PIK3CA_E545K", 0.07),
            ("PIK3CA_E542K", 0.04),
            ("AKT1_E17K", 0.03),
        ),
        (("TP53_R175H", 0.03), ("TP53_R273H", 0.03), ("TP53_R248Q", 0.02), ("ESR1_D538G", 0.02)),
    ),
    CancerSite(
        "prostate",
        "Malignant neoplasm of prostate",
        0.20,
        1.0,
        69,
        8,
        45,
        95,
        ("C61",),
        "399068003",
        "41216001",
        (
            Morphology("8140/3", "Adenocarcinoma, NOS", 0.95),
            Morphology("8500/3", "Infiltrating duct carcinoma, NOS", 0.05),
        ),
        (0.35, 0.35, 0.15, 0.15),
        2.0,
        (
            Imaging(
                "MR",
                "PROSTATE",
                "41216001",
                "MR PROSTATE MULTIPARAMETRIC",
                ("T2 TSE TRA", "DWI b1400", "ADC"),
                3.0,
                1.0,
            ),
            Imaging(
                "PT",
                "WHOLEBODY",
                "38266002",
                "PET-CT PSMA WHOLE BODY",
                ("PET WB PSMA AC", "CT WB LOW DOSE"),
                3.0,
                0.15,
            ),
        ),
        (("AKT1_E17K", 0.01), ("IDH1_R132H", 0.01)),
        (("TP53_R273H", 0.04), ("TP53_R175H", 0.03)),
    ),
    CancerSite(
        "colon",
        "Malignant neoplasm of colon",
        0.13,
        0.55,
        70,
        11,
        30,
        95,
        ("C18.7", "C18.7", "C18.2", "C18.0", "C18.9"),
        "363406005",
        "71854001",
        (
            Morphology("8140/3", "Adenocarcinoma, NOS", 0.85),
            Morphology("8480/3", "Mucinous adenocarcinoma", 0.15),
        ),
        (0.20, 0.27, 0.30, 0.23),
        1.0,
        (_CT_ABD, _PET_CT),
        (
            ("KRAS_G12D", 0.12),
            ("KRAS_G12V", 0.09),
            ("KRAS_G13D", 0.07),
            ("KRAS_G12C", 0.03),
            ("BRAF_V600E", 0.09),
            ("NRAS_Q61K", 0.02),
        ),
        (
            ("APC_R1450X", 0.10),
            ("TP53_R175H", 0.08),
            ("TP53_R273H", 0.05),
            ("TP53_R248Q", 0.04),
            ("PIK3CA_E545K", 0.06),
            ("PIK3CA_H1047R", 0.04),
        ),
    ),
    CancerSite(
        "rectum",
        "Malignant neoplasm of rectum",
        0.07,
        0.62,
        66,
        11,
        30,
        95,
        ("C20",),
        "363351006",
        "34402009",
        (
            Morphology("8140/3", "Adenocarcinoma, NOS", 0.90),
            Morphology("8480/3", "Mucinous adenocarcinoma", 0.10),
        ),
        (0.22, 0.24, 0.32, 0.22),
        1.0,
        (
            Imaging(
                "MR",
                "PELVIS",
                "816092008",
                "MR RECTUM STAGING",
                ("T2 TSE SAG", "T2 TSE OBL HR", "DWI b1000"),
                3.0,
                1.0,
            ),
            _CT_CAP,
        ),
        (
            ("KRAS_G12D", 0.12),
            ("KRAS_G12V", 0.09),
            ("KRAS_G13D", 0.06),
            ("BRAF_V600E", 0.03),
            ("NRAS_Q61K", 0.02),
        ),
        (("APC_R1450X", 0.10), ("TP53_R175H", 0.08), ("TP53_R273H", 0.05), ("PIK3CA_E545K", 0.05)),
    ),
    CancerSite(
        "melanoma",
        "Malignant melanoma of skin",
        0.07,
        0.50,
        60,
        16,
        18,
        95,
        ("C43.5", "C43.6", "C43.7", "C43.3"),
        "372244006",
        "39937001",
        (
            Morphology("8743/3", "Superficial spreading melanoma", 0.60),
            Morphology("8721/3", "Nodular melanoma", 0.25),
            Morphology("8720/3", "Malignant melanoma, NOS", 0.15),
        ),
        (0.55, 0.25, 0.12, 0.08),
        1.2,
        (_CT_CAP, _PET_CT),
        (("BRAF_V600E", 0.45), ("NRAS_Q61R", 0.12), ("NRAS_Q61K", 0.08)),
        (("TP53_R273H", 0.03), ("IDH1_R132C", 0.03)),
    ),
    CancerSite(
        "pancreas",
        "Malignant neoplasm of pancreas",
        0.05,
        0.52,
        70,
        10,
        35,
        95,
        ("C25.0", "C25.0", "C25.1", "C25.9"),
        "363418001",
        "15776009",
        (
            Morphology("8500/3", "Infiltrating duct carcinoma, NOS", 0.90),
            Morphology("8240/3", "Neuroendocrine tumour, grade 1", 0.10),
        ),
        (0.10, 0.20, 0.20, 0.50),
        0.3,
        (
            Imaging(
                "CT",
                "PANCREAS",
                "15776009",
                "CT PANCREAS PROTOCOL",
                ("PANCREAS ART 1mm", "PANCREAS PV 1mm"),
                1.0,
                1.0,
            ),
            Imaging(
                "MR",
                "ABDOMEN",
                "818981001",
                "MR ABDOMEN MRCP",
                ("T2 HASTE COR", "MRCP 3D"),
                4.0,
                0.2,
            ),
        ),
        (("KRAS_G12D", 0.40), ("KRAS_G12V", 0.30), ("KRAS_G12R", 0.15)),
        (("TP53_R273H", 0.10), ("TP53_R175H", 0.10), ("TP53_R248Q", 0.06)),
    ),
    CancerSite(
        "kidney",
        "Malignant neoplasm of kidney, except renal pelvis",
        0.06,
        0.63,
        64,
        12,
        25,
        95,
        ("C64",),
        "363518003",
        "64033007",
        (
            Morphology("8310/3", "Clear cell adenocarcinoma, NOS", 0.75),
            Morphology("8260/3", "Papillary adenocarcinoma, NOS", 0.15),
            Morphology("8317/3", "Renal cell carcinoma, chromophobe type", 0.10),
        ),
        (0.55, 0.10, 0.18, 0.17),
        1.2,
        (
            Imaging(
                "CT",
                "KIDNEY",
                "64033007",
                "CT ABDOMEN RENAL MASS PROTOCOL",
                ("NEPHRO 1mm", "ABD PV 3mm"),
                1.0,
                1.0,
            ),
        ),
        (),
        (("TP53_R175H", 0.02), ("PIK3CA_H1047R", 0.02)),
    ),
)

SITES_BY_KEY: dict[str, CancerSite] = {s.key: s for s in SITES}

# --------------------------------------------------------------------------------------------
# Somatic hotspots (GRCh38)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hotspot:
    """A recurrent somatic SNV with forward-strand alleles and SnpEff-style annotation."""

    key: str
    gene: str
    gene_id: str
    transcript: str
    exon: str
    chrom: str
    pos: int
    ref: str
    alt: str
    hgvs_c: str
    hgvs_p: str
    consequence: str = "missense_variant"
    impact: str = "MODERATE"


_KRAS = ("KRAS", "ENSG00000133703", "ENST00000311936", "2/5", "chr12")
_TP53 = ("TP53", "ENSG00000141510", "ENST00000269305")
_PIK3CA = ("PIK3CA", "ENSG00000121879", "ENST00000263967")
_NRAS = ("NRAS", "ENSG00000213281", "ENST00000369535", "3/7", "chr1")
_EGFR = ("EGFR", "ENSG00000146648", "ENST00000275493")

HOTSPOTS: tuple[Hotspot, ...] = (
    Hotspot("KRAS_G12D", *_KRAS, 25245350, "C", "T", "c.35G>A", "p.Gly12Asp"),
    Hotspot("KRAS_G12V", *_KRAS, 25245350, "C", "A", "c.35G>T", "p.Gly12Val"),
    Hotspot("KRAS_G12C", *_KRAS, 25245351, "C", "A", "c.34G>T", "p.Gly12Cys"),
    Hotspot("KRAS_G12R", *_KRAS, 25245351, "C", "G", "c.34G>C", "p.Gly12Arg"),
    Hotspot("KRAS_G13D", *_KRAS, 25245347, "C", "T", "c.38G>A", "p.Gly13Asp"),
    Hotspot("NRAS_Q61K", *_NRAS, 114713909, "G", "T", "c.181C>A", "p.Gln61Lys"),
    Hotspot("NRAS_Q61R", *_NRAS, 114713908, "T", "C", "c.182A>G", "p.Gln61Arg"),
    Hotspot("EGFR_L858R", *_EGFR, "21/28", "chr7", 55191822, "T", "G", "c.2573T>G", "p.Leu858Arg"),
    Hotspot("EGFR_T790M", *_EGFR, "20/28", "chr7", 55181378, "C", "T", "c.2369C>T", "p.Thr790Met"),
    Hotspot(
        "BRAF_V600E",
        "BRAF",
        "ENSG00000157764",
        "ENST00000646891",
        "15/18",
        "chr7",
        140753336,
        "A",
        "T",
        "c.1799T>A",
        "p.Val600Glu",
    ),
    Hotspot(
        "PIK3CA_H1047R", *_PIK3CA, "21/21", "chr3", 179234297, "A", "G", "c.3140A>G", "p.His1047Arg"
    ),
    Hotspot(
        "PIK3CA_E545K", *_PIK3CA, "10/21", "chr3", 179218303, "G", "A", "c.1633G>A", "p.Glu545Lys"
    ),
    Hotspot(
        "PIK3CA_E542K", *_PIK3CA, "10/21", "chr3", 179218294, "G", "A", "c.1624G>A", "p.Glu542Lys"
    ),
    Hotspot("TP53_R175H", *_TP53, "5/11", "chr17", 7675088, "C", "T", "c.524G>A", "p.Arg175His"),
    Hotspot("TP53_R248Q", *_TP53, "7/11", "chr17", 7674220, "C", "T", "c.743G>A", "p.Arg248Gln"),
    Hotspot("TP53_R273H", *_TP53, "8/11", "chr17", 7673802, "C", "T", "c.818G>A", "p.Arg273His"),
    Hotspot(
        "IDH1_R132H",
        "IDH1",
        "ENSG00000138413",
        "ENST00000345146",
        "4/10",
        "chr2",
        208248388,
        "C",
        "T",
        "c.395G>A",
        "p.Arg132His",
    ),
    Hotspot(
        "IDH1_R132C",
        "IDH1",
        "ENSG00000138413",
        "ENST00000345146",
        "4/10",
        "chr2",
        208248389,
        "G",
        "A",
        "c.394C>T",
        "p.Arg132Cys",
    ),
    Hotspot(
        "AKT1_E17K",
        "AKT1",
        "ENSG00000142208",
        "ENST00000649815",
        "3/14",
        "chr14",
        104780214,
        "C",
        "T",
        "c.49G>A",
        "p.Glu17Lys",
    ),
    Hotspot(
        "ESR1_D538G",
        "ESR1",
        "ENSG00000091831",
        "ENST00000206249",
        "10/10",
        "chr6",
        152094402,
        "A",
        "G",
        "c.1613A>G",
        "p.Asp538Gly",
    ),
    Hotspot(
        "APC_R1450X",
        "APC",
        "ENSG00000134982",
        "ENST00000257430",
        "16/16",
        "chr5",
        112839942,
        "C",
        "T",
        "c.4348C>T",
        "p.Arg1450*",
        "stop_gained",
        "HIGH",
    ),
)

HOTSPOTS_BY_KEY: dict[str, Hotspot] = {h.key: h for h in HOTSPOTS}

# GRCh38 primary assembly lengths, for the VCF ##contig header lines.
GRCH38_CONTIGS: tuple[tuple[str, int], ...] = (
    ("chr1", 248956422),
    ("chr2", 242193529),
    ("chr3", 198295559),
    ("chr4", 190214555),
    ("chr5", 181538259),
    ("chr6", 170805979),
    ("chr7", 159345973),
    ("chr8", 145138636),
    ("chr9", 138394717),
    ("chr10", 133797422),
    ("chr11", 135086622),
    ("chr12", 133275309),
    ("chr13", 114364328),
    ("chr14", 107043718),
    ("chr15", 101991189),
    ("chr16", 90338345),
    ("chr17", 83257441),
    ("chr18", 80373285),
    ("chr19", 58617616),
    ("chr20", 64444167),
    ("chr21", 46709983),
    ("chr22", 50818468),
    ("chrX", 156040895),
    ("chrY", 57227415),
    ("chrM", 16569),
)
CONTIG_ORDER: dict[str, int] = {name: i for i, (name, _) in enumerate(GRCH38_CONTIGS)}

# --------------------------------------------------------------------------------------------
# Treatments: (name, ATC code) for drugs; SNOMED CT for procedures.
# --------------------------------------------------------------------------------------------

ATC = "http://www.whocc.no/atc"
SNOMED = "http://snomed.info/sct"

DRUGS: dict[str, str] = {
    "cisplatin": "L01XA01",
    "carboplatin": "L01XA02",
    "oxaliplatin": "L01XA03",
    "pemetrexed": "L01BA04",
    "paclitaxel": "L01CD01",
    "docetaxel": "L01CD02",
    "doxorubicin": "L01DB01",
    "cyclophosphamide": "L01AA01",
    "fluorouracil": "L01BC02",
    "capecitabine": "L01BC06",
    "irinotecan": "L01CE02",
    "gemcitabine": "L01BC05",
    "etoposide": "L01CB01",
    "pembrolizumab": "L01FF02",
    "nivolumab": "L01FF01",
    "durvalumab": "L01FF03",
    "ipilimumab": "L01FX04",
    "osimertinib": "L01EB04",
    "sotorasib": "L01XX73",
    "trastuzumab": "L01FD01",
    "bevacizumab": "L01FG01",
    "cetuximab": "L01FE01",
    "dabrafenib": "L01EC02",
    "encorafenib": "L01EC03",
    "trametinib": "L01EE01",
    "sunitinib": "L01EX01",
    "cabozantinib": "L01EX07",
    "alpelisib": "L01EM03",
    "tamoxifen": "L02BA01",
    "letrozole": "L02BG04",
    "anastrozole": "L02BG03",
    "leuprorelin": "L02AE02",
    "enzalutamide": "L02BB04",
    "abiraterone": "L02BX03",
}

SURGERY: dict[str, tuple[str, ...]] = {
    "lung": ("Lobectomy of lung",),
    "breast": ("Breast-conserving surgery", "Mastectomy"),
    "prostate": ("Radical prostatectomy",),
    "colon": ("Hemicolectomy", "Sigmoid colectomy"),
    "rectum": ("Low anterior resection of rectum", "Abdominoperineal resection"),
    "melanoma": ("Wide local excision of skin lesion",),
    "pancreas": ("Pancreaticoduodenectomy",),
    "kidney": ("Partial nephrectomy", "Radical nephrectomy"),
}
SURGERY_SNOMED = "387713003"
RADIOTHERAPY_SNOMED = "108290001"

# --------------------------------------------------------------------------------------------
# Scanners
# --------------------------------------------------------------------------------------------

VENDORS: tuple[str, ...] = ("SIEMENS", "GE MEDICAL SYSTEMS", "Philips", "TOSHIBA")
SCANNER_MODELS: dict[tuple[str, str], tuple[str, ...]] = {
    ("SIEMENS", "CT"): ("SOMATOM Force", "SOMATOM Definition AS+"),
    ("SIEMENS", "MR"): ("MAGNETOM Prisma", "MAGNETOM Skyra"),
    ("SIEMENS", "PT"): ("Biograph Vision 600",),
    ("SIEMENS", "MG"): ("MAMMOMAT Revelation",),
    ("SIEMENS", "US"): ("ACUSON Sequoia",),
    ("GE MEDICAL SYSTEMS", "CT"): ("Revolution CT", "Discovery CT750 HD"),
    ("GE MEDICAL SYSTEMS", "MR"): ("SIGNA Premier", "Discovery MR750w"),
    ("GE MEDICAL SYSTEMS", "PT"): ("Discovery MI",),
    ("GE MEDICAL SYSTEMS", "MG"): ("Senographe Pristina",),
    ("GE MEDICAL SYSTEMS", "US"): ("LOGIQ E10",),
    ("Philips", "CT"): ("IQon Spectral CT", "Brilliance 64"),
    ("Philips", "MR"): ("Ingenia", "Achieva dStream"),
    ("Philips", "PT"): ("Vereos PET/CT",),
    ("Philips", "MG"): ("MammoDiagnost DR",),
    ("Philips", "US"): ("EPIQ 7G",),
    ("TOSHIBA", "CT"): ("Aquilion ONE", "Aquilion Prime SP"),
    ("TOSHIBA", "MR"): ("Vantage Titan 3T",),
    ("TOSHIBA", "PT"): ("Celesteion",),
    ("TOSHIBA", "US"): ("Aplio i800",),
}

# --------------------------------------------------------------------------------------------
# Hospitals and names
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hospital:
    """A real European cancer centre the synthetic provider is named after."""

    id: str
    name: str
    country: str
    city: str
    street: str
    postcode: str
    mrn_prefix: str
    language: str
    phone_prefix: str


HOSPITALS: tuple[Hospital, ...] = (
    Hospital(
        "de-berlin",
        "Charité Berlin",
        "DE",
        "Berlin",
        "Charitéplatz 1",
        "10117",
        "CH",
        "de",
        "+49 30",
    ),
    Hospital(
        "es-valencia",
        "Hospital Universitari i Politècnic La Fe",
        "ES",
        "Valencia",
        "Avinguda de Fernando Abril Martorell 106",
        "46026",
        "LF",
        "es",
        "+34 96",
    ),
    Hospital(
        "it-milano",
        "Istituto Nazionale dei Tumori Milano",
        "IT",
        "Milano",
        "Via Giacomo Venezian 1",
        "20133",
        "NT",
        "it",
        "+39 02",
    ),
    Hospital(
        "fr-villejuif",
        "Gustave Roussy",
        "FR",
        "Villejuif",
        "114 Rue Edouard Vaillant",
        "94805",
        "GR",
        "fr",
        "+33 1",
    ),
    Hospital(
        "nl-amsterdam",
        "Netherlands Cancer Institute",
        "NL",
        "Amsterdam",
        "Plesmanlaan 121",
        "1066 CX",
        "NK",
        "nl",
        "+31 20",
    ),
    Hospital(
        "se-stockholm",
        "Karolinska University Hospital",
        "SE",
        "Stockholm",
        "Eugeniavägen 3",
        "171 64",
        "KS",
        "sv",
        "+46 8",
    ),
    Hospital(
        "pt-porto",
        "IPO Porto",
        "PT",
        "Porto",
        "Rua Dr. António Bernardino de Almeida",
        "4200-072",
        "IP",
        "pt",
        "+351 22",
    ),
    Hospital(
        "pl-warszawa",
        "Maria Sklodowska-Curie National Research Institute of Oncology",
        "PL",
        "Warszawa",
        "ul. Roentgena 5",
        "02-781",
        "MC",
        "pl",
        "+48 22",
    ),
    Hospital(
        "at-wien",
        "Universitätsklinikum AKH Wien",
        "AT",
        "Wien",
        "Währinger Gürtel 18-20",
        "1090",
        "AK",
        "de",
        "+43 1",
    ),
    Hospital(
        "be-leuven", "UZ Leuven", "BE", "Leuven", "Herestraat 49", "3000", "UZ", "nl", "+32 16"
    ),
    Hospital(
        "gr-athina",
        "Attikon University Hospital",
        "GR",
        "Athina",
        "Rimini 1, Chaidari",
        "124 62",
        "AT",
        "el",
        "+30 210",
    ),
    Hospital(
        "hu-budapest",
        "National Institute of Oncology",
        "HU",
        "Budapest",
        "Ráth György u. 7-9",
        "1122",
        "OO",
        "hu",
        "+36 1",
    ),
)

FIRST_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # language: (male, female)
    "de": (
        ("Lukas", "Jonas", "Klaus", "Jürgen", "Wolfgang", "Stefan", "Helmut", "Dieter"),
        ("Anna", "Ursula", "Monika", "Sabine", "Petra", "Gisela", "Lea", "Brigitte"),
    ),
    "es": (
        ("José", "Antonio", "Manuel", "Francisco", "Javier", "Jordi", "Vicente", "Carlos"),
        ("María", "Carmen", "Josefa", "Isabel", "Dolores", "Pilar", "Amparo", "Lucía"),
    ),
    "it": (
        ("Giuseppe", "Giovanni", "Antonio", "Mario", "Luigi", "Francesco", "Paolo", "Marco"),
        ("Maria", "Anna", "Giuseppina", "Rosa", "Angela", "Giovanna", "Lucia", "Chiara"),
    ),
    "fr": (
        ("Jean", "Michel", "Pierre", "Philippe", "Alain", "Bernard", "Louis", "Gérard"),
        ("Marie", "Nathalie", "Isabelle", "Sylvie", "Catherine", "Françoise", "Anne", "Léa"),
    ),
    "nl": (
        ("Jan", "Johannes", "Pieter", "Hendrik", "Cornelis", "Willem", "Daan", "Bram"),
        ("Maria", "Johanna", "Anna", "Cornelia", "Emma", "Sanne", "Anke", "Femke"),
    ),
    "sv": (
        ("Lars", "Anders", "Johan", "Per", "Karl", "Erik", "Nils", "Sven"),
        ("Anna", "Eva", "Maria", "Karin", "Kristina", "Ingrid", "Birgitta", "Elsa"),
    ),
    "pt": (
        ("João", "José", "António", "Manuel", "Francisco", "Rui", "Paulo", "Luís"),
        ("Maria", "Ana", "Isabel", "Fernanda", "Rosa", "Helena", "Beatriz", "Inês"),
    ),
    "pl": (
        ("Piotr", "Krzysztof", "Andrzej", "Tomasz", "Jan", "Paweł", "Marek", "Stanisław"),
        ("Anna", "Maria", "Katarzyna", "Małgorzata", "Agnieszka", "Barbara", "Ewa", "Zofia"),
    ),
    "el": (
        (
            "Georgios",
            "Dimitrios",
            "Konstantinos",
            "Ioannis",
            "Nikolaos",
            "Panagiotis",
            "Vasileios",
            "Christos",
        ),
        ("Maria", "Eleni", "Aikaterini", "Vasiliki", "Sofia", "Angeliki", "Georgia", "Dimitra"),
    ),
    "hu": (
        ("László", "István", "József", "János", "Zoltán", "Sándor", "Gábor", "Ferenc"),
        ("Mária", "Erzsébet", "Katalin", "Éva", "Ilona", "Anna", "Zsuzsanna", "Margit"),
    ),
}

FAMILY_NAMES: dict[str, tuple[str, ...]] = {
    "de": (
        "Müller",
        "Schmidt",
        "Schneider",
        "Fischer",
        "Weber",
        "Meyer",
        "Wagner",
        "Becker",
        "Hoffmann",
        "Schäfer",
    ),
    "es": (
        "García",
        "Fernández",
        "González",
        "Rodríguez",
        "López",
        "Martínez",
        "Sánchez",
        "Pérez",
        "Ferrer",
        "Puig",
    ),
    "it": (
        "Rossi",
        "Russo",
        "Ferrari",
        "Esposito",
        "Bianchi",
        "Romano",
        "Colombo",
        "Ricci",
        "Marino",
        "Greco",
    ),
    "fr": (
        "Martin",
        "Bernard",
        "Dubois",
        "Thomas",
        "Robert",
        "Richard",
        "Petit",
        "Durand",
        "Leroy",
        "Moreau",
    ),
    "nl": (
        "de Jong",
        "Jansen",
        "de Vries",
        "van den Berg",
        "van Dijk",
        "Bakker",
        "Janssen",
        "Visser",
        "Smit",
        "Peeters",
    ),
    "sv": (
        "Andersson",
        "Johansson",
        "Karlsson",
        "Nilsson",
        "Eriksson",
        "Larsson",
        "Olsson",
        "Persson",
        "Svensson",
        "Gustafsson",
    ),
    "pt": (
        "Silva",
        "Santos",
        "Ferreira",
        "Pereira",
        "Oliveira",
        "Costa",
        "Rodrigues",
        "Martins",
        "Sousa",
        "Fernandes",
    ),
    "pl": (
        "Nowak",
        "Kowalski",
        "Wiśniewski",
        "Wójcik",
        "Kowalczyk",
        "Kamiński",
        "Lewandowski",
        "Zieliński",
        "Szymański",
        "Woźniak",
    ),
    "el": (
        "Papadopoulos",
        "Papadakis",
        "Georgiou",
        "Nikolaidis",
        "Pappas",
        "Karagiannis",
        "Vlachos",
        "Oikonomou",
        "Dimitriou",
        "Makris",
    ),
    "hu": (
        "Nagy",
        "Kovács",
        "Tóth",
        "Szabó",
        "Horváth",
        "Varga",
        "Kiss",
        "Molnár",
        "Németh",
        "Farkas",
    ),
}

STREETS: dict[str, tuple[str, ...]] = {
    "de": ("Hauptstraße", "Lindenallee", "Bahnhofstraße", "Gartenweg"),
    "es": ("Calle Mayor", "Carrer de Colón", "Avenida del Puerto", "Calle de la Paz"),
    "it": ("Via Roma", "Via Garibaldi", "Corso Buenos Aires", "Via Dante"),
    "fr": ("Rue de la République", "Avenue Victor Hugo", "Rue Pasteur", "Boulevard Voltaire"),
    "nl": ("Kerkstraat", "Dorpsstraat", "Molenweg", "Stationsstraat"),
    "sv": ("Storgatan", "Drottninggatan", "Kungsgatan", "Skolgatan"),
    "pt": ("Rua de Santa Catarina", "Avenida da Boavista", "Rua do Almada", "Rua das Flores"),
    "pl": ("ul. Marszałkowska", "ul. Polna", "ul. Lipowa", "ul. Ogrodowa"),
    "el": ("Odos Ermou", "Odos Athinas", "Leoforos Syngrou", "Odos Stadiou"),
    "hu": ("Kossuth Lajos utca", "Petőfi Sándor utca", "Andrássy út", "Rákóczi út"),
}
