"""FHIR R4 transaction bundles with mCODE profiles, one file per patient, as a hospital's
FHIR export would produce them (identifiers, name, birth date and address included: the
importer pseudonymises).

Plain dicts rather than a FHIR object library: writing needs no validation machinery, and
the shapes stay visible here. Ids are UUIDs derived from the seed, references are
`Type/id`, every entry has `fullUrl` and a `PUT` request, so the bundle can be posted to a
FHIR server as is.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from oncofed.synth.ids import fhir_id
from oncofed.synth.model import PatientRecord, Provider

MCODE = "http://hl7.org/fhir/us/mcode/StructureDefinition/"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
AJCC = "http://cancerstaging.org"

Resource = dict[str, Any]


def _entry(resource: Resource) -> dict[str, Any]:
    kind, rid = resource["resourceType"], resource["id"]
    return {
        "fullUrl": f"urn:uuid:{rid}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{kind}/{rid}"},
    }


def _day(base: dt.date, days: int) -> str:
    return (base + dt.timedelta(days=days)).isoformat()


def build_bundle(provider: Provider, record: PatientRecord, seed: int) -> dict[str, Any]:
    """The transaction Bundle of one patient."""
    p, d, o = record.patient, record.diagnosis, record.outcome

    def rid(*parts: object) -> str:
        return fhir_id(seed, provider.id, p.mrn, *parts)

    patient_id = rid("Patient")
    subject = {"reference": f"Patient/{patient_id}"}
    patient: Resource = {
        "resourceType": "Patient",
        "id": patient_id,
        "meta": {"profile": [MCODE + "mcode-cancer-patient"]},
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": f"urn:oncofed:{provider.id}:mrn",
                "value": p.mrn,
            },
            {
                "use": "official",
                "system": f"urn:oncofed:national-id:{provider.country}",
                "value": p.other_id,
            },
        ],
        "name": [{"use": "official", "family": p.family_name, "given": [p.given_name]}],
        "telecom": [{"system": "phone", "value": p.phone, "use": "home"}],
        "gender": p.sex,
        "birthDate": p.birth_date.isoformat(),
        "address": [
            {
                "line": [p.address],
                "city": p.city,
                "postalCode": p.postcode,
                "country": provider.country,
            }
        ],
        "managingOrganization": {"display": provider.name},
    }
    if o.death_date:
        patient["deceasedDateTime"] = o.death_date.isoformat()
    else:
        patient["deceasedBoolean"] = False

    condition_id = rid("Condition", d.id)
    condition: Resource = {
        "resourceType": "Condition",
        "id": condition_id,
        "meta": {"profile": [MCODE + "mcode-primary-cancer-condition"]},
        "extension": [
            {
                "url": MCODE + "mcode-histology-morphology-behavior",
                "valueCodeableConcept": {
                    "coding": [
                        {"system": ICDO3, "code": d.icdo3_morphology, "display": d.morphology_label}
                    ]
                },
            }
        ],
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active" if o.vital_status == "alive" else "resolved",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "category": [{"coding": [{"system": SNOMED, "code": "64572001", "display": "Disease"}]}],
        "code": {
            "coding": [
                {"system": ICD10, "code": d.icd10, "display": d.label},
                {"system": SNOMED, "code": d.snomed},
            ],
            "text": d.label,
        },
        "bodySite": [
            {
                "coding": [
                    {"system": SNOMED, "code": d.body_site_snomed},
                    {"system": ICDO3, "code": d.icdo3_topography},
                ]
            }
        ],
        "subject": subject,
        "onsetDateTime": d.diagnosis_date.isoformat(),
        "recordedDate": d.diagnosis_date.isoformat(),
    }
    condition_ref = {"reference": f"Condition/{condition_id}"}
    resources: list[Resource] = [patient, condition]

    stage_components = [
        (LOINC, "21905-5", "T", d.t),
        (LOINC, "21906-3", "N", d.n),
        (LOINC, "21907-1", "M", d.m),
    ]
    category_ids = []
    for system, code, label, value in stage_components:
        oid = rid("Observation", label)
        category_ids.append(oid)
        resources.append(
            {
                "resourceType": "Observation",
                "id": oid,
                "meta": {
                    "profile": [
                        MCODE
                        + {
                            "T": "mcode-tnm-primary-tumor-category",
                            "N": "mcode-tnm-regional-nodes-category",
                            "M": "mcode-tnm-distant-metastases-category",
                        }[label]
                    ]
                },
                "status": "final",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "survey",
                            }
                        ]
                    }
                ],
                "code": {"coding": [{"system": system, "code": code}]},
                "subject": subject,
                "focus": [condition_ref],
                "effectiveDateTime": d.diagnosis_date.isoformat(),
                "valueCodeableConcept": {"coding": [{"system": AJCC, "code": f"c{value}"}]},
            }
        )
    stage_id = rid("Observation", "stage-group")
    resources.append(
        {
            "resourceType": "Observation",
            "id": stage_id,
            "meta": {"profile": [MCODE + "mcode-tnm-stage-group"]},
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "survey",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {"system": LOINC, "code": "21908-9", "display": "Stage group.clinical Cancer"}
                ]
            },
            "subject": subject,
            "focus": [condition_ref],
            "effectiveDateTime": d.diagnosis_date.isoformat(),
            "valueCodeableConcept": {"coding": [{"system": AJCC, "code": d.stage_group}]},
            "hasMember": [{"reference": f"Observation/{oid}"} for oid in category_ids],
        }
    )
    condition["stage"] = [
        {
            "summary": {"coding": [{"system": AJCC, "code": d.stage_group}]},
            "assessment": [{"reference": f"Observation/{stage_id}"}],
        }
    ]
    resources.append(
        {
            "resourceType": "Observation",
            "id": rid("Observation", "vital-status"),
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "75186-7", "display": "Vital status"}]},
            "subject": subject,
            "effectiveDateTime": o.last_contact_date.isoformat(),
            "valueCodeableConcept": {
                "coding": [
                    {"system": SNOMED, "code": "438949009", "display": "Alive"}
                    if o.vital_status == "alive"
                    else {"system": SNOMED, "code": "419099009", "display": "Dead"}
                ]
            },
        }
    )
    for t in record.treatments:
        start, end = _day(d.diagnosis_date, t.start_day), _day(d.diagnosis_date, t.end_day)
        coding = {"system": t.code_system, "code": t.code, "display": t.name}
        if t.kind in ("surgery", "radiotherapy"):
            resources.append(
                {
                    "resourceType": "Procedure",
                    "id": rid("Procedure", t.id),
                    "meta": {
                        "profile": [
                            MCODE
                            + (
                                "mcode-cancer-related-surgical-procedure"
                                if t.kind == "surgery"
                                else "mcode-radiotherapy-course-summary"
                            )
                        ]
                    },
                    "status": "completed",
                    "code": {"coding": [coding], "text": t.name},
                    "subject": subject,
                    "performedPeriod": {"start": start, "end": end},
                    "reasonReference": [condition_ref],
                }
            )
        else:
            resources.append(
                {
                    "resourceType": "MedicationRequest",
                    "id": rid("MedicationRequest", t.id),
                    "meta": {"profile": [MCODE + "mcode-cancer-related-medication-request"]},
                    "status": "completed",
                    "intent": "order",
                    "category": [{"text": t.kind}],
                    "medicationCodeableConcept": {"coding": [coding], "text": t.name},
                    "subject": subject,
                    "authoredOn": start,
                    "reasonReference": [condition_ref],
                    "dosageInstruction": [{"text": "as per protocol"}],
                }
            )
            resources.append(
                {
                    "resourceType": "MedicationAdministration",
                    "id": rid("MedicationAdministration", t.id),
                    "meta": {"profile": [MCODE + "mcode-cancer-related-medication-administration"]},
                    "status": "completed",
                    "category": {"text": t.kind},
                    "medicationCodeableConcept": {"coding": [coding], "text": t.name},
                    "subject": subject,
                    "effectivePeriod": {"start": start, "end": end},
                    "reasonReference": [condition_ref],
                    "request": {"reference": f"MedicationRequest/{rid('MedicationRequest', t.id)}"},
                }
            )
    return {
        "resourceType": "Bundle",
        "id": rid("Bundle"),
        "type": "transaction",
        "entry": [_entry(r) for r in resources],
    }


def write_bundle(root: Path, provider: Provider, record: PatientRecord, seed: int) -> Path:
    """Write `fhir/<MRN>.json` and return its path."""
    path = root / "fhir" / f"{record.patient.mrn}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    bundle = build_bundle(provider, record, seed)
    path.write_text(json.dumps(bundle, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
