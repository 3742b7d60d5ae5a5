"""Transforms for PYTHON pipelines: installed code, found through the entry-point group
`etl_console.transforms`, never code sent over the API.

A transform is a class (see base.Transform): a marshmallow schema for its config, how it changes the
column list (checked when tasks are saved, before any run), and a function of one Arrow record
batch to another, applied to every batch of a run. No database, no Flask: services validate with it,
the warehouse executes it.
"""
from .base import ColumnsRefused, RowTransform, Transform, TransformConfigInvalid, row_transform
from .registry import (
    ENTRY_POINT_GROUP,
    UnknownTransform,
    describe_transforms,
    installed_transforms,
    register_transform,
    transform_class,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ColumnsRefused",
    "RowTransform",
    "Transform",
    "TransformConfigInvalid",
    "UnknownTransform",
    "describe_transforms",
    "installed_transforms",
    "register_transform",
    "row_transform",
    "transform_class",
]
