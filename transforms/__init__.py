"""Transforms: plain functions `PushEvent -> PushEvent | Skip` with no I/O.

The pipeline machinery lives in service/pipeline.py (service never imports this package;
it loads transforms by the names in INGEST_TRANSFORMS). Its names are re-exported here
so a transform of your own needs only `from transforms import Skip`.
"""

from service.pipeline import Pipeline, Skip, Transform, load_pipeline, load_transform

__all__ = ["Pipeline", "Skip", "Transform", "load_pipeline", "load_transform"]
