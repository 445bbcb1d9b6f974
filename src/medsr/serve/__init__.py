"""medsr as a DICOM node: receive from a scanner or PACS, enhance, send back (``medsr serve``).

Modules: :mod:`~medsr.serve.config` (the typed configuration), :mod:`~medsr.serve.receiver` (Storage SCP),
:mod:`~medsr.serve.spool` and :mod:`~medsr.serve.ledger` (durable state), :mod:`~medsr.serve.node` (the loops),
:mod:`~medsr.serve.senders` (C-STORE and STOW-RS), :mod:`~medsr.serve.monitor` (audit log, metrics, health),
:mod:`~medsr.serve.dicomweb` (one-shot enhancement of a study already in a PACS). Nothing here is imported by
``import medsr``; pynetdicom, prometheus-client and dicomweb-client load only when a node or client runs.
"""
