"""Physics evaluation of trained networks: arrays of labels and scores in, plain dicts out.

Nothing here imports TensorFlow: the models are evaluated elsewhere and this package gets
their predictions.  Every result is built from Python ``int``/``float``/``str``/``list``/
``dict`` (non-finite floats become ``None``) so it can be written with :func:`write_json`.
scikit-learn computes ROC curves, AUCs, the confusion matrix, precision/recall/F1, PCA and
k-means; it is imported when a metric is computed, not with the package.

Modules:

* :mod:`.inputs`: checks of scores, class labels and matrices;
* :mod:`.roc`: ROC curves, AUC, thinning a curve (an event is selected when
  ``score >= threshold``; ties form one step, the AUC counts them one half);
* :mod:`.classification`: accuracy, precision/recall/F1, confusion matrix, one-vs-rest ROC;
* :mod:`.anomaly`: per-signal ROC/AUC and efficiencies at trigger working points, the
  L1-like single-lepton menu, the anomaly trigger's pure rate and efficiency gain over it;
* :mod:`.compare`: tables of several models side by side;
* :mod:`.latent`: PCA, k-means, clusters against classes;
* :mod:`.dimuon`: leading dimuon invariant mass.

Rates, thresholds for a rate (``score > threshold``), efficiencies at a working point,
binomial intervals and the small-sample rule live in :mod:`poetml.rates`, shared with the
firmware, and are re-exported here.
"""

from __future__ import annotations

from .._atomic import to_jsonable, write_json
from ..rates import (
    SmallSampleWarning,
    binomial_interval,
    efficiency_at_fpr,
    fpr_to_rate,
    rate_to_fpr,
    threshold_at_fpr,
)
from .anomaly import anomaly_metrics, menu_fires, trigger_menu_metrics, weighted_rate_metrics
from .classification import classification_metrics, confusion_matrix
from .compare import compare_models
from .dimuon import MUON_MASS, dimuon_mass, dimuon_mass_from_features
from .latent import KMeansResult, PCAResult, cluster_table, fit_clusters, kmeans, pca
from .roc import auc, roc_auc, roc_curve, roc_from_scores, thin_curve

__all__ = [
    "MUON_MASS",
    "KMeansResult",
    "PCAResult",
    "SmallSampleWarning",
    "anomaly_metrics",
    "auc",
    "binomial_interval",
    "classification_metrics",
    "cluster_table",
    "compare_models",
    "confusion_matrix",
    "dimuon_mass",
    "dimuon_mass_from_features",
    "efficiency_at_fpr",
    "fit_clusters",
    "fpr_to_rate",
    "kmeans",
    "menu_fires",
    "pca",
    "rate_to_fpr",
    "roc_auc",
    "roc_curve",
    "roc_from_scores",
    "thin_curve",
    "threshold_at_fpr",
    "to_jsonable",
    "trigger_menu_metrics",
    "weighted_rate_metrics",
    "write_json",
]
