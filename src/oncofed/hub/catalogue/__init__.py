"""The public dataset catalogue (Tier 1, issue 7).

- :mod:`.schema`: the JSON shape of a catalogue record (what routes return, what DCAT encodes);
- :mod:`.models`: the hub table keeping each dataset's last published figures and its edits;
- :mod:`.service`: refresh from the nodes over the task channel, edits, full-text search;
- :mod:`.dcat`: records ⇄ RDF graph (EUCAIM DCAT-AP on DCAT-AP 3 and HealthDCAT-AP);
- :mod:`.fdp`: the FAIR Data Point tree and content negotiation;
- :mod:`.harvest`: importing another FAIR Data Point's catalogue;
- :mod:`.routes`: the HTTP API.
"""
