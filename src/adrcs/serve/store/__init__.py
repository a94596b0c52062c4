"""Results store of the inspection service (SQLAlchemy + Alembic; SQLite file or PostgreSQL).

    from adrcs.serve.store import Store, NewInspection
    store = Store("sqlite:///adrcs.db")          # or "postgresql://user:pw@host/db"; migrates to head
    [rec] = store.add_inspections([NewInspection(kind="wafer_map", model_version="v1", predicted="Center",
                                                 probabilities={"Center": 0.9, "none": 0.1}, confidence=0.9,
                                                 content=npy_bytes, media_type="application/x-npy", lot="L1")])
    store.add_review(rec.id, action="correct", label="Donut", reviewer="alice")
"""
from __future__ import annotations

from adrcs.serve.store.store import (INSPECTION_KINDS, MIGRATIONS_DIR, MODEL_ACTIONS, MODEL_KINDS, MODEL_STATUSES,
                                     REVIEW_ACTIONS, ROLES, ApiToken, Inspection, ModelVersion, NewInspection, NotFound,
                                     Review, Store, alembic_config, decode_labels, encode_labels, hash_token,
                                     normalize_url, role_allows, upgrade)

__all__ = ["Store", "NewInspection", "Inspection", "Review", "ModelVersion", "ApiToken", "NotFound", "ROLES",
           "INSPECTION_KINDS", "REVIEW_ACTIONS", "MODEL_KINDS", "MODEL_STATUSES", "MODEL_ACTIONS", "MIGRATIONS_DIR",
           "encode_labels", "decode_labels", "role_allows", "hash_token", "normalize_url", "alembic_config", "upgrade"]
