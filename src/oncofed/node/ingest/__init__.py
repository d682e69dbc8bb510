"""Ingest into the node store: images (DICOM) here; clinical and genomic importers alongside."""
