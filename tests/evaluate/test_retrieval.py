"""Tests for jax_ssl.evaluate.retrieval: Recall@k against hand-computed rankings."""

from __future__ import annotations

import numpy as np
import pytest

from jax_ssl.evaluate import protocols, report, retrieval


def _at(angles, norms=None):
  """2-D rows at `angles` (radians), of the given norms (cosine ignores them)."""
  angles = np.asarray(angles, np.float64)
  norms = np.ones_like(angles) if norms is None else np.asarray(norms, np.float64)
  return (norms[:, None] * np.stack([np.cos(angles), np.sin(angles)], 1)).astype(np.float32)


# Gallery: angles 0, 0.3, 0.6, 1.0, 2.0 with classes 0, 1, 2, 1, 0 (norms vary).
TRAIN = _at([0.0, 0.3, 0.6, 1.0, 2.0], norms=[1.0, 3.0, 0.5, 2.0, 1.0])
TRAIN_LABELS = np.array([0, 1, 2, 1, 0])
# Queries, with their galleries ranked by angular distance (hand-computed):
#   0.05, class 1: t0 (0), t1 (1), ...           -> first hit at rank 2
#   0.95, class 0: t3 (1), t2 (2), t1 (1), t0 (0) -> first hit at rank 4
#   0.6,  class 2: t2 (2)                        -> hit at rank 1
#  -3.0,  class 0: nearest is t4 at 2.0 (|-3 - 2| = 5 rad = 1.28 rad the other way round;
#                  t0 is 3.0 rad away)           -> hit at rank 1
TEST = _at([0.05, 0.95, 0.6, -3.0], norms=[2.0, 1.0, 1.0, 5.0])
TEST_LABELS = np.array([1, 0, 2, 0])


def test_recall_at_k_hand_computed():
  recall = retrieval.retrieval_recall(TRAIN, TRAIN_LABELS, TEST, TEST_LABELS, ks=(1, 2, 3, 4))
  assert recall == {"retrieval_recall@1": 0.5, "retrieval_recall@2": 0.75,
                    "retrieval_recall@3": 0.75, "retrieval_recall@4": 1.0}
  # RSPNet's default ks; 10 is clipped to the 5 gallery rows (every query hits by then).
  default = retrieval.retrieval_recall(TRAIN, TRAIN_LABELS, TEST, TEST_LABELS)
  assert default == {"retrieval_recall@1": 0.5, "retrieval_recall@5": 1.0,
                     "retrieval_recall@10": 1.0}
  # Chunks of one query (the last chunk padded) give the same recalls.
  assert retrieval.retrieval_recall(TRAIN, TRAIN_LABELS, TEST, TEST_LABELS,
                                    chunk_size=3) == default


def test_ties_rank_the_lower_gallery_index_first():
  query, label = _at([0.0]), np.array([0])
  # Rows 0 and 1 point the same way (cosine 1 for both): row 0 ranks first.
  first_wrong = retrieval.retrieval_recall(_at([0.0, 0.0], [1.0, 2.0]), np.array([1, 0]),
                                           query, label, ks=(1, 2))
  first_right = retrieval.retrieval_recall(_at([0.0, 0.0], [1.0, 2.0]), np.array([0, 1]),
                                           query, label, ks=(1, 2))
  assert first_wrong == {"retrieval_recall@1": 0.0, "retrieval_recall@2": 1.0}
  assert first_right == {"retrieval_recall@1": 1.0, "retrieval_recall@2": 1.0}
  with pytest.raises(ValueError, match="at least one test query"):
    retrieval.retrieval_recall(TRAIN, TRAIN_LABELS, TEST[:0], TEST_LABELS[:0])


def test_retrieval_protocol_reports_and_tables_the_recalls():
  chosen = protocols.parse_protocols("retrieval")
  assert chosen.retrieval and chosen.frozen and not chosen.knn
  results, predictions = protocols.frozen_feature_protocols(
      TRAIN, TRAIN_LABELS, TEST, TEST_LABELS, chosen, num_classes=3, knn_k=1,
      knn_k_sweep=(1,), knn_temperature=0.07, low_label_seeds=(0,))
  assert predictions is None
  assert results == {"retrieval_recall@1": 0.5, "retrieval_recall@5": 1.0,
                     "retrieval_recall@10": 1.0}
  table = report.results_table({"method": "m", "steps": 1, "knn_top1": 0.25, **results})
  assert table.splitlines()[0] == ("| features | knn_top1 | retrieval_recall@1 | "
                                   "retrieval_recall@5 | retrieval_recall@10 |")
