"""Layer 7: Ignite handlers; they call metrics and attacks, they hold no math of their own."""

from bundle.handlers.attack import AttackHandler
from bundle.handlers.clinical_export import ClinicalExporter
from bundle.handlers.attack_metrics import AttackMetricsWriter, pending_cases
from bundle.handlers.overlay_saver import OverlaySaver
from bundle.handlers.prediction_saver import PredictionSaver
from bundle.handlers.segmentation_metrics import SegmentationMetricsWriter

__all__ = ["AttackHandler", "ClinicalExporter", "AttackMetricsWriter", "OverlaySaver", "PredictionSaver", "SegmentationMetricsWriter", "pending_cases"]
