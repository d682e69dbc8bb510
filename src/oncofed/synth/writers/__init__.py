"""Writers: one module per file format a provider really holds (DICOM, CSV, FHIR, VCF).

Each writer consumes `PatientRecord`s one at a time and streams to disk, so memory stays
bounded whatever the number of patients.
"""
