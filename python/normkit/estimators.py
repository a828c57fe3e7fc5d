"""scikit-learn and Keras style estimators on normkit's Normalizer: the same data in NumPy on the host or in any
DLPack device array on a GPU, statistics merged exactly across partial_fit calls (Welford/Chan in float64).

The fitted attributes (mean_, var_, scale_, data_min_, ...) are NumPy arrays with scikit-learn's names and
meaning; reading them after fitting on a device copies the state to the host and synchronizes the stream (once a
fit). fit/partial_fit/transform on device arrays only enqueue work, except that the first transform after a fit
checks the fit for +-Inf (one value read back; scikit-learn rejects infinity in fit), and Normalizer's fit and
transform check X for NaN and +-Inf (its min and max read back: a synchronization each)."""
from __future__ import annotations

import inspect

import numpy as np

from . import _arrays, _normkit
from .functional import normalize as _lp_normalize
from .functional import stats as _stats

try:  # scikit-learn's base classes when installed: clone, get_params/set_params, repr, pipelines
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import OneToOneFeatureMixin as _FeatureNames
    from sklearn.base import TransformerMixin as _Transformer
except Exception:  # pragma: no cover - a minimal stand-in without scikit-learn
    class _Base:
        @classmethod
        def _get_param_names(cls):
            sig = inspect.signature(cls.__init__)
            return sorted(p for p in sig.parameters if p != "self")

        def get_params(self, deep=True):
            return {k: getattr(self, k) for k in self._get_param_names()}

        def set_params(self, **params):
            for k, v in params.items():
                if k not in self._get_param_names():
                    raise ValueError(f"Invalid parameter {k!r} for estimator {type(self).__name__}")
                setattr(self, k, v)
            return self

    class _Transformer:
        def fit_transform(self, X, y=None, **fit_params):
            return self.fit(X, y, **fit_params).transform(X)

    class _FeatureNames:
        pass


def _output_dtype(x):
    """scikit-learn's: float64, float32 and float16 stay, anything else becomes float64."""
    d = _arrays.dtype_name(x)
    return d if d in ("float64", "float32", "float16") else "float64"


def _host_scalar(a, stream=0):
    """A one-element array of any library as a Python float (device arrays: read back after the work queued on
    `stream`, a synchronization)."""
    if hasattr(a, "item"):
        return float(a.item())
    out = np.empty((), dtype=str(a.dtype))
    _normkit.copy_bytes(out, a, stream)
    return float(out)


def _as_2d(X, estimator="normkit"):
    """X checked as scikit-learn's check_array does for these estimators: host input (NumPy, lists, anything with
    __array__) becomes a 2-D C-contiguous array (another order is copied; integers, booleans and numeric objects
    become float64, uint8 stays), complex and sparse input and empty arrays raise; device arrays must already be
    2-D and C-contiguous (no copy, ValueError otherwise)."""
    module = type(X).__module__
    if module.startswith("scipy.sparse") or hasattr(X, "tocsr"):
        raise TypeError(f"normkit: {estimator} does not take sparse input: convert it with X.toarray()")
    if _arrays.device_of(X)[0]:
        shape = tuple(X.shape)
        if len(shape) != 2:
            raise ValueError(f"Expected 2D array, got {len(shape)}D array instead (normkit: argument 'X' of {estimator})")
        return X
    if _arrays.library(X) not in ("numpy", "other") or (hasattr(X, "__dlpack__") and _arrays.library(X) != "numpy"):
        # (PyTorch/CuPy/JAX host arrays stay in their library: C-contiguity is checked where they are read)
        shape = tuple(X.shape)
        if len(shape) != 2:
            raise ValueError(f"Expected 2D array, got {len(shape)}D array instead (normkit: argument 'X' of {estimator})")
        return X
    X = np.asarray(X)
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    if X.dtype.kind in "biuO" and X.dtype != np.uint8:
        X = X.astype(np.float64)
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got {X.ndim}D array instead. Reshape your data either using array.reshape(-1, 1) if "
                         "your data has a single feature or array.reshape(1, -1) if it contains a single sample.")
    if X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"Found array with {X.shape[0]} sample(s) and {X.shape[1]} feature(s) (shape={X.shape}) while a minimum of 1 "
                         f"is required by {estimator}.")
    return np.ascontiguousarray(X)


def _check_features(estimator, X):
    if int(X.shape[1]) != estimator.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting {estimator.n_features_in_} features as input.")


def _state_bytes(state, stream):
    """A C++ Normalizer's state file as bytes (pickling)."""
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "state.safetensors")
        state.save(p, stream)
        with open(p, "rb") as f:
            return f.read()


def _state_from_bytes(data, device):
    import os
    import tempfile
    state = _normkit.Normalizer("zscore", [0], True, True, "sklearn", 1e-7, 0.0, 1.0, False, 1.0, 0.0, False, bool(device))
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "state.safetensors")
        with open(p, "wb") as f:
            f.write(data)
        state.load(p, bool(device))
    return state


class _PicklesState:
    """Pickling of an object holding a C++ Normalizer in `_state` (None or absent: unfitted): the state travels as
    the bytes of its state file, and comes back in the memory space it was fitted in."""

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("_state", "_fitted")}
        if getattr(self, "_state", None) is not None:
            state["_saved_state"] = _state_bytes(self._state, getattr(self, "_stream", 0))
        return state

    def __setstate__(self, state):
        saved = state.pop("_saved_state", None)
        self.__dict__.update(state)
        self._stream = 0
        self._fitted = None
        if saved is not None:
            self._state = _state_from_bytes(saved, getattr(self, "_device", False))
        elif isinstance(self, Normalization):
            self._state = None  # (unadapted: the layer's own marker)


class _FittedScaler(_PicklesState, _FeatureNames, _Transformer, _Base):
    """Common machinery: a C++ Normalizer adapted per partial_fit, its state read on demand."""

    _method = "zscore"

    def _options(self):
        return {}

    def _new_state(self, X):
        device, _ = _arrays.device_of(X)
        o = dict(with_mean=True, with_std=True, zero_variance="sklearn", epsilon=1e-7, range_min=0.0, range_max=1.0, clip=False)
        o.update(self._options())
        self._state = _normkit.Normalizer(self._method, [0], o["with_mean"], o["with_std"], o["zero_variance"], o["epsilon"],
                                          o["range_min"], o["range_max"], o["clip"], 1.0, 0.0, False, device)
        self._device = device
        self._stream = 0
        self._fitted = None

    def _reset(self):
        for name in ("_state", "_fitted", "n_features_in_"):
            if hasattr(self, name):
                delattr(self, name)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN is ignored by fit and kept by transform, as scikit-learn's scalers
        return tags

    @_arrays.accepting
    def fit(self, X, y=None):
        """Fits on X (a fresh state; scikit-learn's fit; no sample weights). Returns self."""
        self._reset()
        return self.partial_fit(X, y)

    @_arrays.accepting
    def partial_fit(self, X, y=None):
        """Merges X's statistics into the state (exactly: Chan's formula in float64). Returns self. On host data a
        fit holding +-Inf raises ValueError here (scikit-learn's 'Input contains infinity'); on device data at the
        first transform or attribute read (checking earlier would synchronize)."""
        X = _as_2d(X, type(self).__name__)
        first = not hasattr(self, "_state")
        if first:
            self._new_state(X)
            self.n_features_in_ = int(X.shape[1])
        else:
            _check_features(self, X)
            # (a later batch holding +-Inf must leave the state as it was, as scikit-learn's partial_fit: the C++
            # fit merges first and checks when the fit is used, so host batches are checked here, one pass)
            if not self._device and _arrays.library(X) == "numpy" and X.dtype.kind == "f" and np.isinf(X).any():
                raise ValueError("Input contains infinity (normkit: the batch is not merged; the fit is unchanged)")
        # (the stream the statistics are on: reading them back, saving and pickling wait for it)
        self._stream = _arrays.stream_handle(None, X)
        try:
            self._state.adapt(X, self._stream)
            self._fitted = None
            if not self._device:
                self.fitted_state()  # (cheap on the host: the fit's check for +-Inf)
        except Exception as e:
            if first:
                self._reset()  # (a failed first fit leaves the estimator unfitted)
            if isinstance(e, ValueError) and "Inf" in str(e):
                raise ValueError(f"Input contains infinity ({e})") from e
            raise
        return self

    def _check_fitted(self):
        if not hasattr(self, "_state"):
            from .exceptions import NotFittedError
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. Call 'fit' first.")

    def _transform(self, X, inverse, copy=None):
        self._check_fitted()
        X = _as_2d(X, type(self).__name__)
        _check_features(self, X)
        out = _arrays.empty_like_library(X, tuple(X.shape), _output_dtype(X))
        self._state.transform(X, out, inverse, _arrays.stream_handle(None, X))
        return out

    @_arrays.accepting
    def transform(self, X, copy=None):
        """The fitted transform of X, a new array in X's library (float dtypes kept, others become float64)."""
        return self._transform(X, False, copy)

    @_arrays.accepting
    def inverse_transform(self, X, copy=None):
        return self._transform(X, True, copy)

    def fitted_state(self):
        """The state as NumPy arrays: count, nan_count, mean, m2, min, max and the transform's center, scale,
        offset (y = (x - center) * scale + offset). Synchronizes for device state."""
        self._check_fitted()
        if self._fitted is None:
            raw = self._state.state(getattr(self, "_stream", 0))
            self._fitted = {k: np.asarray(v) for k, v in raw.items()}
        return self._fitted

    def _n_samples_seen(self, with_nan=False):
        """StandardScaler's: the non-NaN values a feature (an int when equal, else float64 counts as scikit-learn's);
        MinMaxScaler's and MaxAbsScaler's: the rows seen (with_nan)."""
        s = self.fitted_state()
        count = s["count"] + (s["nan_count"] if with_nan else 0)
        return int(count[0]) if np.all(count == count[0]) else count.astype(np.float64)

    def _where_seen(self, values):
        """values with NaN for the features that saw no value (all NaN), as scikit-learn reports them."""
        return np.where(self.fitted_state()["count"] > 0, values, np.nan)

    def save(self, path):
        """Writes the state file the command line reads (`normkit apply --state`)."""
        self._check_fitted()
        self._state.save(str(path), getattr(self, "_stream", 0))

    @classmethod
    def load(cls, path, device=False):
        """An estimator from a state file (`normkit fit --state` or save()); device=True keeps the state on the GPU."""
        state = _normkit.Normalizer(cls._method, [0], True, True, "sklearn", 1e-7, 0.0, 1.0, False, 1.0, 0.0, False, bool(device))
        state.load(str(path), bool(device))
        if state.method != cls._method:
            raise ValueError(f"normkit: {path} holds a {state.method} state, not {cls._method} ({cls.__name__})")
        est = cls(**cls._params_from_options(state.options()))
        est._state = state
        est._device = bool(device)
        est._stream = 0
        est._fitted = None
        est.n_features_in_ = int(np.prod(est.fitted_state()["kept_shape"]))
        return est

    @classmethod
    def _params_from_options(cls, options):
        return {}



class StandardScaler(_FittedScaler):
    """scikit-learn's StandardScaler: y = (x - mean_) / scale_ per feature, with scikit-learn's rules: population
    variance; a constant feature (var <= n eps var + (n eps mean)^2, eps = 2^-52) gets scale_ 1; NaN is ignored by
    fit and kept by transform. Attributes: mean_ (None when with_mean and with_std are both off), var_ and scale_
    (None without with_std), n_samples_seen_ (an int, or one count a feature when NaNs differ), n_features_in_."""

    _method = "zscore"

    def __init__(self, *, copy=True, with_mean=True, with_std=True):
        self.copy = copy
        self.with_mean = with_mean
        self.with_std = with_std

    def _options(self):
        return dict(with_mean=self.with_mean, with_std=self.with_std)

    @classmethod
    def _params_from_options(cls, options):
        return dict(with_mean=options["with_mean"], with_std=options["with_std"])

    @property
    def mean_(self):
        s = self.fitted_state()
        return self._where_seen(s["mean"]) if (self.with_mean or self.with_std) else None

    @property
    def var_(self):
        s = self.fitted_state()
        return self._where_seen(s["m2"] / np.maximum(s["count"], 1)) if self.with_std else None

    @property
    def scale_(self):
        return self._where_seen(1.0 / self.fitted_state()["scale"]) if self.with_std else None

    @property
    def n_samples_seen_(self):
        return self._n_samples_seen()


class MinMaxScaler(_FittedScaler):
    """scikit-learn's MinMaxScaler: y = x * scale_ + min_, mapping [data_min_, data_max_] onto feature_range; a range
    below 10 eps of the input dtype counts as 1 (scikit-learn's near-zero rule); clip=True clips to feature_range."""

    _method = "minmax"

    def __init__(self, feature_range=(0, 1), *, copy=True, clip=False):
        self.feature_range = feature_range
        self.copy = copy
        self.clip = clip

    def _options(self):
        lo, hi = self.feature_range
        if not lo < hi:
            raise ValueError(f"Minimum of desired feature range must be smaller than maximum. Got {self.feature_range}.")
        return dict(range_min=float(lo), range_max=float(hi), clip=bool(self.clip))

    @classmethod
    def _params_from_options(cls, options):
        return dict(feature_range=(options["range_min"], options["range_max"]), clip=options["clip"])

    data_min_ = property(lambda self: self._where_seen(self.fitted_state()["min"]))
    data_max_ = property(lambda self: self._where_seen(self.fitted_state()["max"]))
    data_range_ = property(lambda self: self.data_max_ - self.data_min_)
    scale_ = property(lambda self: self._where_seen(self.fitted_state()["scale"]))
    min_ = property(lambda self: self._where_seen(self.fitted_state()["offset"] - self.fitted_state()["center"] * self.fitted_state()["scale"]))
    n_samples_seen_ = property(lambda self: self._n_samples_seen(with_nan=True))


class MaxAbsScaler(_FittedScaler):
    """scikit-learn's MaxAbsScaler: y = x / scale_, scale_ = max |x| per feature (below 10 eps of the dtype: 1)."""

    _method = "maxabs"

    def __init__(self, *, copy=True):
        self.copy = copy

    max_abs_ = property(lambda self: self._where_seen(np.maximum(np.abs(self.fitted_state()["min"]), np.abs(self.fitted_state()["max"]))))
    scale_ = property(lambda self: self._where_seen(1.0 / self.fitted_state()["scale"]))
    n_samples_seen_ = property(lambda self: self._n_samples_seen(with_nan=True))


class Normalizer(_FeatureNames, _Transformer, _Base):
    """scikit-learn's Normalizer: each sample (row) divided by its l1, l2 or max norm; stateless (fit only checks
    X). A zero row stays zero."""

    def __init__(self, norm="l2", *, copy=True):
        self.norm = norm
        self.copy = copy

    @staticmethod
    def _check_finite(X):
        # (scikit-learn's Normalizer rejects NaN and +-Inf; normkit.normalize does not check.) X's min and max, one
        # read by normkit's engine, are both finite exactly when every value is (NaN propagates to both): for device
        # data the two numbers are read back, a synchronization.
        if _arrays.dtype_name(X) == "uint8" or any(int(e) == 0 for e in X.shape):
            return
        extremes = _stats(X, axis=None, stats=("min", "max"))
        stream = _arrays.stream_handle(None, X)
        if not all(np.isfinite(_host_scalar(extremes[k], stream)) for k in ("min", "max")):
            raise ValueError("Input contains NaN or infinity (normkit.Normalizer; normkit.normalize keeps IEEE arithmetic)")

    @_arrays.accepting
    def fit(self, X, y=None):
        """Checks X (2-D, finite as scikit-learn's: on a device that check reads two numbers back) and records its
        feature count."""
        X = _as_2d(X, "Normalizer")
        self._check_finite(X)
        self.n_features_in_ = int(X.shape[1])
        return self

    @_arrays.accepting
    def transform(self, X, copy=None):
        if not hasattr(self, "n_features_in_"):
            from .exceptions import NotFittedError
            raise NotFittedError("This Normalizer instance is not fitted yet. Call 'fit' first.")
        X = _as_2d(X, "Normalizer")
        _check_features(self, X)
        self._check_finite(X)
        out = _arrays.empty_like_library(X, tuple(X.shape), _output_dtype(X))
        return _lp_normalize(X, self.norm, out=out)


class Normalization(_PicklesState):
    """Keras's Normalization layer (keras.layers.Normalization): y = (x - mean) / max(sqrt(variance), 1e-7) along the
    kept `axis` (the feature axis, -1 by default; Keras's axis is the one kept, normkit's axes are the reduced ones),
    or the inverse with invert=True. mean/variance given at construction, or from adapt(data), which restarts the
    statistics on every call as Keras does."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False):
        self.axis = axis
        self.mean = mean
        self.variance = variance
        self.invert = invert
        self._state = None

    def _axes(self, shape):
        keep = _arrays.normalize_axes(self.axis, len(shape), "axis") if self.axis is not None else []
        return keep, [d for d in range(len(shape)) if d not in keep]

    def _state_from_mean_variance(self, x):
        """The state of the given mean and variance (Keras's Normalization(mean=..., variance=...)), in x's memory."""
        shape = tuple(x.shape)
        keep, reduced = self._axes(shape)
        kept = [int(shape[d]) for d in keep]
        mean = np.broadcast_to(np.asarray(self.mean, dtype=np.float64), kept).ravel().tolist()
        var = np.broadcast_to(np.asarray(self.variance, dtype=np.float64), kept).ravel().tolist()
        device, _ = _arrays.device_of(x)
        self._device = device
        self._stream = 0
        self._state = _normkit.Normalizer("zscore", reduced, True, True, "keras", 1e-7, 0.0, 1.0, False, 1.0, 0.0, False, device)
        self._state.set_mean_variance(kept, mean, var)

    @_arrays.accepting
    def adapt(self, data):
        _, reduced = self._axes(tuple(data.shape))
        device, _ = _arrays.device_of(data)
        self._device = device
        self._stream = _arrays.stream_handle(None, data)
        self._state = _normkit.Normalizer("zscore", reduced, True, True, "keras", 1e-7, 0.0, 1.0, False, 1.0, 0.0, False, device)
        self._state.adapt(data, self._stream)
        return self

    @_arrays.accepting
    def __call__(self, x):
        if self._state is None:
            if self.mean is None or self.variance is None:
                raise ValueError("normkit.Normalization: call adapt(data) or give mean and variance first")
            self._state_from_mean_variance(x)
        out = _arrays.empty_like_library(x, tuple(x.shape), _output_dtype(x))
        self._state.transform(x, out, bool(self.invert), _arrays.stream_handle(None, x))
        return out
