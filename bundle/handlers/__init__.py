"""Layer 7: Ignite handlers; they call metrics and attacks, they hold no math of their own."""

from bundle.handlers.segmentation_metrics import SegmentationMetricsWriter

__all__ = ["SegmentationMetricsWriter"]
