"""DrivePI data engine: QA conversations from 4D ground truth (occupancy, flow, planning, captions)
and the nuScenes-QA import, written in the QA schema of :mod:`drivepi.datasets.qa_schema`.

Entry points: ``python data_engine/generate_qa.py`` (generate / import), ``python
data_engine/verify.py`` (recompute every answer from ground truth).
"""
