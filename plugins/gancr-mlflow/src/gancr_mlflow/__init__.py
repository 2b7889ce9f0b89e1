"""gancr-mlflow: log gancr training runs to MLflow through gancr's training hooks (see README.md)."""

from gancr_mlflow.logger import MlflowLogger, flatten

__all__ = ["MlflowLogger", "flatten"]
__version__ = "0.1.0"
