"""Layer 1: phantom datasets in the real datasets' formats, datalists, converters for real datasets."""

from bundle.data.datalist import read_datalist, write_datalist
from bundle.data.phantoms import TASKS, ensure_dataset, generate_phantom_dataset

__all__ = ["TASKS", "ensure_dataset", "generate_phantom_dataset", "read_datalist", "write_datalist"]
