"""The seeded generator of providers and patient records.

Each patient draws from its own random stream, seeded by (seed, provider id, patient index):
patient i is the same whatever the number of patients asked for, the providers can be
generated in any order, and nothing is held in memory beyond the patient being made.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TypeVar

from oncofed.synth import vocabulary as v
from oncofed.synth.ids import dicom_uid, digits, rng_for
from oncofed.synth.lesion import draw_lesion
from oncofed.synth.model import (
    Diagnosis,
    ImagingSeries,
    ImagingStudy,
    Outcome,
    Patient,
    PatientRecord,
    Provider,
    Sex,
    Treatment,
    TreatmentKind,
    VariantCall,
)

T = TypeVar("T")

DIAGNOSIS_FIRST = dt.date(2010, 1, 1)
DIAGNOSIS_LAST = dt.date(2024, 12, 31)
# The day the synthetic follow-up ends (administrative censoring); fixed, never "today".
FOLLOW_UP_END = dt.date(2025, 6, 30)
SEQUENCED_FRACTION = 0.6

SOP_CLASS = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "MG": "1.2.840.10008.5.1.4.1.1.1.2",
    "US": "1.2.840.10008.5.1.4.1.1.6.1",
    "OT": "1.2.840.10008.5.1.4.1.1.7",
    "SEG": "1.2.840.10008.5.1.4.1.1.66.4",
}
MATRIX = {"CT": 32, "MR": 32, "PT": 16, "MG": 32, "US": 32, "OT": 32}


def make_provider(index: int) -> Provider:
    """The provider at `index`: a real European cancer centre's name marked synthetic.

    Past the end of the hospital table, the names repeat with a numeric suffix, so any
    number of providers gets distinct ids.
    """
    hospital = v.HOSPITALS[index % len(v.HOSPITALS)]
    cycle = index // len(v.HOSPITALS)
    suffix = f"-{cycle + 1}" if cycle else ""
    return Provider(
        index=index,
        id=hospital.id + suffix,
        name=f"{hospital.name} (synthetic){' ' + str(cycle + 1) if cycle else ''}",
        country=hospital.country,
        city=hospital.city,
        address=f"{hospital.street}, {hospital.postcode} {hospital.city}",
        mrn_prefix=hospital.mrn_prefix + (str(cycle) if cycle else ""),
        phone_prefix=hospital.phone_prefix,
        preferred_vendor=v.VENDORS[index % len(v.VENDORS)],
    )


def language_of(provider: Provider) -> str:
    """The language used for names and streets at this provider."""
    return v.HOSPITALS[provider.index % len(v.HOSPITALS)].language


def mrn_for(provider: Provider, index: int) -> str:
    """The hospital's medical record number for patient `index`: unique within the provider
    (multiplying by a number prime to 10**8 is a bijection) but not visibly sequential."""
    return f"{provider.mrn_prefix}{(index * 7919 + 1000003) % 10**8:08d}"


def iter_patients(
    provider_index: int, n: int, seed: int, start: int = 0, instances: int = 3
) -> Iterator[PatientRecord]:
    """Yield patients `start` .. `start + n - 1` of a provider, fully generated, one at a time.

    This is the in-memory API benchmarks use to fill a store at 100k-patient scale without
    writing any file; the writers consume the same records.
    """
    provider = make_provider(provider_index)
    for index in range(start, start + n):
        yield make_patient_record(provider, index, seed, instances)


def make_patient_record(
    provider: Provider, index: int, seed: int, instances: int = 3
) -> PatientRecord:
    """Generate patient `index` of `provider`: a function of (seed, provider id, index) only.

    `instances` is the number of images per (CT, MR, PT) series; it changes no other field.
    """
    rng = rng_for(seed, provider.id, index)
    site = _weighted(rng, v.SITES, [s.weight for s in v.SITES])
    sex: Sex = "male" if rng.random() < site.p_male else "female"
    patient, diagnosis = _patient_and_diagnosis(rng, provider, index, site, sex)
    sequenced = rng.random() < SEQUENCED_FRACTION
    variants = _variants(rng, site) if sequenced else ()
    outcome = _outcome(rng, site, diagnosis)
    treatments = _treatments(rng, site, diagnosis, patient, variants, outcome)
    studies = _studies(rng, seed, provider, patient, site, diagnosis, outcome, instances)
    return PatientRecord(
        patient=patient,
        diagnosis=diagnosis,
        treatments=tuple(treatments),
        outcome=outcome,
        studies=tuple(studies),
        sample_id=f"{patient.mrn}-T1" if sequenced else None,
        variants=variants,
        lesion=draw_lesion(seed, provider, index, stage_number(diagnosis.stage_group)),
    )


# --------------------------------------------------------------------------------------------


def stage_number(stage_group: str) -> int:
    """1-4 from an AJCC stage group such as "IIIB" or "IVA"."""
    if stage_group.startswith("IV"):
        return 4
    return len(stage_group.rstrip("ABC"))


def _weighted(rng: random.Random, items: Sequence[T], weights: Sequence[float]) -> T:
    return rng.choices(items, weights=weights, k=1)[0]


def _years_between(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _patient_and_diagnosis(
    rng: random.Random, provider: Provider, index: int, site: v.CancerSite, sex: Sex
) -> tuple[Patient, Diagnosis]:
    lang = language_of(provider)
    male, female = v.FIRST_NAMES[lang]
    given = rng.choice(male if sex == "male" else female)
    family = rng.choice(v.FAMILY_NAMES[lang])
    span = (DIAGNOSIS_LAST - DIAGNOSIS_FIRST).days
    diagnosis_date = DIAGNOSIS_FIRST + dt.timedelta(days=rng.randrange(span + 1))
    age = round(rng.gauss(site.age_mean, site.age_sd))
    age = min(max(age, site.age_min), site.age_max)
    birth_date = diagnosis_date - dt.timedelta(days=round(age * 365.25) + rng.randrange(365))
    # Recompute from the dates, so age and dates never disagree (a de-id test checks this).
    age = _years_between(birth_date, diagnosis_date)
    mrn = mrn_for(provider, index)
    postcode = digits(5, provider.id, index, "postcode")
    patient = Patient(
        provider_id=provider.id,
        index=index,
        mrn=mrn,
        other_id=f"{provider.country}{digits(10, provider.id, index, 'national')}",
        given_name=given,
        family_name=family,
        sex=sex,
        birth_date=birth_date,
        address=f"{rng.choice(v.STREETS[lang])} {rng.randint(1, 180)}",
        postcode=postcode,
        city=provider.city,
        phone=f"{provider.phone_prefix} {digits(7, provider.id, index, 'phone')}",
    )
    stage = _weighted(rng, (1, 2, 3, 4), site.stage_weights)
    t, n, m, group = _tnm(rng, stage)
    morphology = _weighted(rng, site.morphologies, [mo.weight for mo in site.morphologies])
    icd10 = rng.choice(site.icd10)
    topography = icd10 if "." in icd10 else f"{icd10}.9"
    grade = min(3, max(1, stage - 1 + rng.randint(0, 1) + (1 if stage == 1 else 0)))
    diagnosis = Diagnosis(
        id=f"{mrn}-D1",
        site=site.key,
        label=site.label,
        icd10=icd10,
        icdo3_topography=topography,
        icdo3_morphology=morphology.code,
        morphology_label=morphology.label,
        snomed=site.snomed,
        body_site_snomed=site.body_site_snomed,
        diagnosis_date=diagnosis_date,
        age_at_diagnosis=age,
        t=t,
        n=n,
        m=m,
        stage_group=group,
        grade=grade,
    )
    return patient, diagnosis


def _tnm(rng: random.Random, stage: int) -> tuple[str, str, str, str]:
    """T, N, M categories consistent with the stage group (simplified AJCC 8th logic)."""
    if stage == 1:
        t = rng.choice(("T1", "T1", "T2"))
        return t, "N0", "M0", "IA" if t == "T1" else "IB"
    if stage == 2:
        t, n = rng.choice((("T2", "N1"), ("T3", "N0"), ("T1", "N1")))
        return t, n, "M0", "IIA" if n == "N0" or t == "T1" else "IIB"
    if stage == 3:
        t, n = rng.choice((("T3", "N1"), ("T4", "N1"), ("T2", "N2"), ("T4", "N2")))
        return t, n, "M0", {"N1": "IIIA", "N2": "IIIB"}[n] if t != "T4" else "IIIC"
    t = rng.choice(("T2", "T3", "T4"))
    n = rng.choice(("N0", "N1", "N2"))
    m = rng.choice(("M1a", "M1b", "M1c"))
    return t, n, m, "IVA" if m == "M1a" else "IVB"


def _variants(rng: random.Random, site: v.CancerSite) -> tuple[VariantCall, ...]:
    """Somatic hotspots: at most one driver of the mutually exclusive group, plus any
    co-mutations, each with its site-specific frequency."""
    keys: list[str] = []
    draw = rng.random()
    for key, p in site.drivers:
        if draw < p:
            keys.append(key)
            break
        draw -= p
    for key, p in site.co_mutations:
        if rng.random() < p:
            keys.append(key)
    calls = []
    for key in keys:
        h = v.HOTSPOTS_BY_KEY[key]
        calls.append(
            VariantCall(
                gene=h.gene,
                chrom=h.chrom,
                pos=h.pos,
                ref=h.ref,
                alt=h.alt,
                consequence=h.consequence,
                impact=h.impact,
                hgvs_c=h.hgvs_c,
                hgvs_p=h.hgvs_p,
                gene_id=h.gene_id,
                transcript=h.transcript,
                exon=h.exon,
                vaf=round(rng.uniform(0.05, 0.6), 3),
                depth=rng.randint(80, 900),
            )
        )
    calls.sort(key=lambda c: (v.CONTIG_ORDER[c.chrom], c.pos, c.alt))
    return tuple(calls)


def _outcome(rng: random.Random, site: v.CancerSite, diagnosis: Diagnosis) -> Outcome:
    """Survival from an exponential whose median falls with stage; administrative censoring at
    FOLLOW_UP_END and some loss to follow-up."""
    stage = stage_number(diagnosis.stage_group)
    median_months = {1: 160.0, 2: 90.0, 3: 40.0, 4: 12.0}[stage] * site.survival_factor
    rate = math.log(2) / (median_months * 30.44)
    death_day = max(1, round(rng.expovariate(rate)))
    max_follow_up = (FOLLOW_UP_END - diagnosis.diagnosis_date).days
    censor_day = max_follow_up
    if rng.random() < 0.15:
        censor_day = max(1, round(max_follow_up * rng.uniform(0.3, 1.0)))
    if death_day <= censor_day:
        date = diagnosis.diagnosis_date + dt.timedelta(days=death_day)
        return Outcome("dead", death_day, date, date)
    date = diagnosis.diagnosis_date + dt.timedelta(days=censor_day)
    return Outcome("alive", censor_day, date, None)


_Plan = list[tuple[TreatmentKind, str, int, int]]


def _treatments(
    rng: random.Random,
    site: v.CancerSite,
    diagnosis: Diagnosis,
    patient: Patient,
    variants: Sequence[VariantCall],
    outcome: Outcome,
) -> list[Treatment]:
    """A treatment course plausible for the site, the stage and the driver mutations."""
    stage = stage_number(diagnosis.stage_group)
    mutated = {(c.gene, c.hgvs_p) for c in variants}

    def has(gene: str, protein: str | None = None) -> bool:
        return any(g == gene and protein in (None, p) for g, p in mutated)

    plan: _Plan = []
    s0 = rng.randint(14, 60)  # first treatment, days after diagnosis

    def add(kind: TreatmentKind, name: str, start: int, length: tuple[int, int]) -> None:
        plan.append((kind, name, start, start + rng.randint(*length)))

    def systemic(
        kind: TreatmentKind, names: Sequence[str], start: int, length: tuple[int, int]
    ) -> None:
        end = rng.randint(*length)
        for name in names:
            plan.append((kind, name, start, start + end))

    surgery = rng.choice(v.SURGERY[site.key])
    key = site.key
    if key == "lung":
        small_cell = diagnosis.icdo3_morphology == "8041/3"
        if small_cell:
            systemic("chemotherapy", ("carboplatin", "etoposide"), s0, (60, 120))
            if stage <= 3:
                add("radiotherapy", "Thoracic radiotherapy", s0 + 10, (21, 42))
        elif stage <= 2:
            if rng.random() < 0.8:
                add("surgery", surgery, s0, (0, 0))
                if stage == 2 and rng.random() < 0.5:
                    systemic("chemotherapy", ("cisplatin", "pemetrexed"), s0 + 40, (60, 90))
            else:
                add("radiotherapy", "Stereotactic body radiotherapy", s0, (5, 12))
        elif stage == 3:
            systemic("chemotherapy", ("carboplatin", "paclitaxel"), s0, (40, 60))
            add("radiotherapy", "Thoracic chemoradiotherapy", s0, (35, 45))
            add("immunotherapy", "durvalumab", s0 + 90, (180, 365))
        elif has("EGFR", "p.Leu858Arg"):
            add("targeted", "osimertinib", s0, (180, 900))
        else:
            systemic("chemotherapy", ("carboplatin", "pemetrexed"), s0, (60, 120))
            add("immunotherapy", "pembrolizumab", s0, (120, 720))
            if has("KRAS", "p.Gly12Cys"):
                add("targeted", "sotorasib", s0 + rng.randint(200, 400), (90, 300))
    elif key == "breast":
        if stage <= 3:
            conserving = stage <= 2 and rng.random() < 0.65
            add("surgery", "Breast-conserving surgery" if conserving else "Mastectomy", s0, (0, 0))
            if conserving or stage == 3:
                add("radiotherapy", "Adjuvant breast radiotherapy", s0 + 60, (21, 35))
            if stage >= 2 and rng.random() < 0.6:
                systemic("chemotherapy", ("doxorubicin", "cyclophosphamide"), s0 + 30, (60, 90))
                add("chemotherapy", "paclitaxel", s0 + 120, (60, 90))
            if rng.random() < 0.15:
                add("targeted", "trastuzumab", s0 + 30, (300, 365))
            if rng.random() < 0.75:
                drug = (
                    "tamoxifen"
                    if diagnosis.age_at_diagnosis < 50
                    else rng.choice(("letrozole", "anastrozole"))
                )
                add("hormone", drug, s0 + 150, (700, 1825))
        else:
            add("hormone", "letrozole", s0, (180, 720))
            if has("PIK3CA"):
                add("targeted", "alpelisib", s0 + rng.randint(200, 400), (120, 365))
            else:
                add("chemotherapy", "paclitaxel", s0 + rng.randint(200, 400), (90, 180))
    elif key == "prostate":
        if stage <= 2:
            r = rng.random()
            if r < 0.45:
                add("surgery", surgery, s0 + 30, (0, 0))
            elif r < 0.85:
                add("radiotherapy", "External beam radiotherapy of prostate", s0 + 30, (28, 56))
        elif stage == 3:
            add("hormone", "leuprorelin", s0, (540, 1095))
            add("radiotherapy", "External beam radiotherapy of prostate", s0 + 60, (28, 56))
        else:
            add("hormone", "leuprorelin", s0, (365, 1825))
            add("hormone", rng.choice(("enzalutamide", "abiraterone")), s0, (180, 900))
            if rng.random() < 0.3:
                add("chemotherapy", "docetaxel", s0 + 30, (90, 150))
    elif key in ("colon", "rectum"):
        if stage <= 3:
            if key == "rectum" and stage >= 2:
                add("radiotherapy", "Neoadjuvant pelvic chemoradiotherapy", s0, (35, 40))
                add("chemotherapy", "capecitabine", s0, (35, 40))
                add("surgery", surgery, s0 + rng.randint(70, 110), (0, 0))
            else:
                add("surgery", surgery, s0, (0, 0))
                if stage == 3 or (stage == 2 and rng.random() < 0.2):
                    systemic("chemotherapy", ("oxaliplatin", "capecitabine"), s0 + 40, (90, 180))
        else:
            systemic("chemotherapy", ("oxaliplatin", "fluorouracil"), s0, (90, 240))
            ras_mutant = has("KRAS") or has("NRAS")
            add("targeted", "bevacizumab" if ras_mutant else "cetuximab", s0, (90, 240))
            if has("BRAF", "p.Val600Glu"):
                add("targeted", "encorafenib", s0 + rng.randint(250, 400), (90, 240))
    elif key == "melanoma":
        if stage <= 3:
            add("surgery", surgery, s0, (0, 0))
            if stage == 3:
                if has("BRAF") and rng.random() < 0.5:
                    systemic("targeted", ("dabrafenib", "trametinib"), s0 + 40, (300, 365))
                else:
                    add("immunotherapy", "nivolumab", s0 + 40, (300, 365))
        elif has("BRAF") and rng.random() < 0.5:
            systemic("targeted", ("dabrafenib", "trametinib"), s0, (180, 720))
        else:
            systemic("immunotherapy", ("nivolumab", "ipilimumab"), s0, (90, 720))
    elif key == "pancreas":
        if stage <= 2 and rng.random() < 0.7:
            add("surgery", surgery, s0, (0, 0))
            systemic(
                "chemotherapy", ("oxaliplatin", "irinotecan", "fluorouracil"), s0 + 50, (120, 180)
            )
        elif rng.random() < 0.5:
            systemic("chemotherapy", ("gemcitabine", "paclitaxel"), s0, (60, 180))
        else:
            systemic("chemotherapy", ("oxaliplatin", "irinotecan", "fluorouracil"), s0, (60, 180))
    elif key == "kidney":
        if stage <= 3 or rng.random() < 0.3:
            add(
                "surgery",
                "Partial nephrectomy" if stage == 1 else "Radical nephrectomy",
                s0,
                (0, 0),
            )
        if stage == 4:
            if rng.random() < 0.6:
                systemic("immunotherapy", ("nivolumab", "ipilimumab"), s0 + 30, (90, 720))
            else:
                add("targeted", rng.choice(("sunitinib", "cabozantinib")), s0 + 30, (120, 720))

    treatments: list[Treatment] = []
    for kind, name, start, end in sorted(plan, key=lambda p: (p[2], p[0], p[1])):
        if start >= outcome.survival_days:
            continue
        if kind in ("surgery", "radiotherapy"):
            code, system = (
                (v.SURGERY_SNOMED if kind == "surgery" else v.RADIOTHERAPY_SNOMED),
                v.SNOMED,
            )
        else:
            code, system = v.DRUGS[name], v.ATC
        treatments.append(
            Treatment(
                id=f"{patient.mrn}-R{len(treatments) + 1}",
                kind=kind,
                name=name,
                code=code,
                code_system=system,
                start_day=start,
                end_day=min(end, outcome.survival_days),
                intent="curative" if stage <= 3 else "palliative",
            )
        )
    return treatments


_PHYSICIANS = (
    "Weiss^Johanna^^Dr.",
    "Moreau^Luc^^Dr.",
    "Conti^Elena^^Dr.",
    "Berg^Henrik^^Dr.",
    "Silva^Marta^^Dra.",
    "Novak^Tomas^^Dr.",
    "Keller^Anja^^Dr.",
    "Ruiz^Pablo^^Dr.",
)
_OPERATORS = ("TECH^ANNA", "TECH^MARCO", "MTRA^SVEN", "TECH^LUCIA", "RT^JONAS")


def _studies(
    rng: random.Random,
    seed: int,
    provider: Provider,
    patient: Patient,
    site: v.CancerSite,
    diagnosis: Diagnosis,
    outcome: Outcome,
    instances: int,
) -> list[ImagingStudy]:
    """A baseline exam (always), companion exams with their site probabilities, and up to two
    follow-ups of the baseline kind while the patient is alive."""
    exams: list[tuple[v.Imaging, int]] = []
    base_day = -rng.randint(1, 30)
    exams.append((site.imaging[0], base_day))
    for imaging in site.imaging[1:]:
        if rng.random() < imaging.probability:
            exams.append((imaging, base_day + rng.randint(1, 14)))
    day = max(base_day, 0)
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        day += rng.randint(90, 400)
        if day >= outcome.survival_days:
            break
        exams.append((site.imaging[0], day))

    vendor = provider.preferred_vendor if rng.random() < 0.7 else rng.choice(v.VENDORS)
    studies = []
    for number, (imaging, study_day) in enumerate(exams, start=1):
        key = (seed, provider.id, patient.mrn, number)
        series: list[ImagingSeries] = []
        frame_uid = dicom_uid(*key, "frame")
        for description in imaging.series:
            modality = "CT" if description.startswith("CT ") else imaging.modality
            series.append(
                _series(
                    rng,
                    key,
                    len(series) + 1,
                    "image",
                    modality,
                    imaging,
                    description,
                    vendor,
                    frame_uid,
                )
            )
            if modality != "MG":
                series[-1] = replace(series[-1], num_instances=instances)
        first = series[0]
        if first.modality == "CT" and rng.random() < 0.15:
            series.append(
                _series(
                    rng,
                    key,
                    len(series) + 1,
                    "segmentation",
                    "SEG",
                    imaging,
                    "Tumour segmentation",
                    vendor,
                    frame_uid,
                    referenced=first.number,
                )
            )
        if rng.random() < 0.05:
            series.append(
                _series(
                    rng,
                    key,
                    len(series) + 1,
                    "secondary_capture",
                    "OT",
                    imaging,
                    "Dose Report",
                    vendor,
                    frame_uid,
                )
            )
        if rng.random() < 0.03:
            series.append(
                _series(
                    rng,
                    key,
                    len(series) + 1,
                    "ultrasound",
                    "US",
                    imaging,
                    f"US {imaging.body_part}",
                    vendor,
                    frame_uid,
                )
            )
        date = diagnosis.diagnosis_date + dt.timedelta(days=study_day)
        studies.append(
            ImagingStudy(
                uid=dicom_uid(*key, "study"),
                number=number,
                accession_number=f"A{digits(9, *key, 'accession')}",
                study_id=f"{number}{digits(4, *key, 'studyid')}",
                date=date,
                time=f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}",
                day=study_day,
                description=imaging.study_description,
                referring_physician=rng.choice(_PHYSICIANS),
                performing_physician=rng.choice(_PHYSICIANS),
                operator=rng.choice(_OPERATORS),
                series=tuple(series),
            )
        )
    return studies


def _series(
    rng: random.Random,
    key: tuple[object, ...],
    number: int,
    kind: str,
    modality: str,
    imaging: v.Imaging,
    description: str,
    vendor: str,
    frame_uid: str,
    referenced: int | None = None,
) -> ImagingSeries:
    scanner_modality = "CT" if modality in ("SEG", "OT") else modality
    models = (
        v.SCANNER_MODELS.get((vendor, scanner_modality))
        or v.SCANNER_MODELS[("SIEMENS", scanner_modality)]
    )
    maker = vendor if (vendor, scanner_modality) in v.SCANNER_MODELS else "SIEMENS"
    thickness = imaging.slice_thickness if modality in ("CT", "MR", "PT") else 0.0
    if modality == "CT" and imaging.modality == "PT":
        thickness = 3.0
    size = MATRIX.get(modality, 32)
    return ImagingSeries(
        uid=dicom_uid(*key, "series", number),
        number=number,
        kind=kind,  # type: ignore[arg-type]
        modality=modality,
        sop_class_uid=SOP_CLASS[modality],
        body_part=imaging.body_part,
        body_part_snomed=imaging.body_part_snomed,
        manufacturer=maker,
        model_name=rng.choice(models),
        description=description,
        slice_thickness=thickness,
        num_instances=1,
        rows=size,
        columns=size,
        frame_of_reference_uid=frame_uid,
        burned_in_annotation=kind in ("secondary_capture", "ultrasound"),
        referenced_series_number=referenced,
    )
