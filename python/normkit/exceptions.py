"""normkit's exception types (scikit-learn's NotFittedError when scikit-learn is installed)."""
try:
    from sklearn.exceptions import NotFittedError
except Exception:  # pragma: no cover
    class NotFittedError(ValueError, AttributeError):
        """An estimator used before fit."""
