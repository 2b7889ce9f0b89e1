"""Pretrained weights by name, from one table of sources: the only place that knows download URLs,
caches, reachability and the key layouts of published weights.

A component asks for weights by source and model name, and gets a :class:`Pretrained`::

    weights = load_pretrained("torchvision", "vgg19")                  # cache, else download
    weights = load_pretrained("timm", "resnet18")                      # Hugging Face cache, else download
    weights = load_pretrained("torchvision", "vgg19", file="vgg.pth")  # a local file instead

Every file is read by :func:`gancr.storage.reader.read_state_dict` (safetensors or
``torch.load(weights_only=True)``, a memory check first). A source that is not cached checks at
once that a download can work (``HF_HUB_OFFLINE`` unset, the host answering within
``GANCR_NETWORK_TIMEOUT`` seconds), and otherwise fails with one message that names the file to
bring (see "Weights offline" in docs/training.md) instead of a minute of retries.

**Adding a source** is one function in this module (or a module that imports it), registered
by name with :func:`source`: it takes the model name and returns a :class:`Pretrained` — the
state dict in the layout the model's published (torchvision or timm) weights have, where it
came from, and the :class:`Preprocessing` the weights expect::

    @source("mysource", label="mysource {name}", preprocessing=Preprocessing(...))
    def _mysource(name: str) -> Pretrained:
        path = ...                                   # find the file (a cache, a package's data)
        state = read_state_dict(path, f"mysource {name} weights")   # or convert another format
        return Pretrained(state, origin=str(path), preprocessing=...)

``load_pretrained("mysource", name)`` then works wherever weights are asked for by name, and
``file=`` reads a local file in that source's layout, with the source's preprocessing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gancr.errors import BuildError, CheckpointError
from gancr.storage.reader import read_file, read_state_dict, state_dict_of

if TYPE_CHECKING:  # torch loads when weights are read, not on import
    from torch import Tensor

__all__ = [
    "Preprocessing",
    "Pretrained",
    "Source",
    "Loader",
    "IMAGENET",
    "source",
    "sources",
    "get_source",
    "load_pretrained",
    "PREPROCESSING_KEY",
    "preprocessing_to_json",
    "preprocessing_from_json",
    "vgg_features",
    "reachable",
    "hub_checkpoints_dir",
    "offline_error",
    "OFFLINE_HELP",
]

#: Where the docs explain how to bring weights to a machine without internet.
OFFLINE_HELP = "see 'Weights offline' in docs/training.md"

#: Seconds to wait for a weights host to answer before calling it unreachable (``GANCR_NETWORK_TIMEOUT``).
DEFAULT_NETWORK_TIMEOUT = 5.0


@dataclass(frozen=True)
class Preprocessing:
    """What weights expect of an RGB image in [0, 1]: ``(channels(x) * scale - mean) / std``.

    Attributes:
        mean, std: per channel, in the order of ``channels``.
        scale: the input range's top (1 for [0, 1]; 255 for weights trained on 0-255 pixels).
        channels: ``"RGB"``, or ``"BGR"`` for weights trained on BGR images (Caffe's).
    """

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    scale: float = 1.0
    channels: Literal["RGB", "BGR"] = "RGB"


#: ImageNet's mean and standard deviation on [0, 1] RGB (torchvision's and most of timm's weights).
IMAGENET = Preprocessing()


@dataclass(frozen=True)
class Pretrained:
    """Weights a source found.

    Attributes:
        state_dict: in the layout of the model's published weights (for VGG, torchvision's
            ``features.<index>.*``; see :func:`vgg_features`).
        origin: where they came from (a file), for messages.
        preprocessing: what they expect of an image; None leaves it to the model (timm's
            ``pretrained_cfg``).
    """

    state_dict: dict[str, Tensor]
    origin: str
    preprocessing: Preprocessing | None = None


#: What a source is: the model's name -> its weights.
Loader = Callable[[str], Pretrained]


@dataclass(frozen=True)
class Source:
    """A registered source of pretrained weights (see :func:`source`)."""

    name: str
    load: Loader
    label: str
    preprocessing: Preprocessing | None
    doc: str
    #: Reads a local file in a format of the source's own (HED's Keras ``.h5``), by suffix.
    formats: dict[str, Callable[[Path], Pretrained]] = field(default_factory=dict)
    #: Says at once, without reading anything, what is missing for the source's weights (None: nothing).
    missing: Callable[[], str | None] | None = None

    def describe(self, model: str) -> str:
        """How messages name ``model``'s weights from this source (``vgg19``, ``timm resnet18``)."""
        return self.label.format(name=model)


_SOURCES: dict[str, Source] = {}


def source(name: str, *, label: str = "{name}", preprocessing: Preprocessing | None = IMAGENET,
           formats: dict[str, Callable[[Path], Pretrained]] | None = None,
           missing: Callable[[], str | None] | None = None) -> Callable[[Loader], Loader]:
    """Register ``load(model_name) -> Pretrained`` as the source ``name``.

    Args:
        name: the source's name, as :func:`load_pretrained` takes it.
        label: how messages name a model's weights, with ``{name}`` for the model.
        preprocessing: what weights of this source expect (also for a local ``file=``); None
            leaves it to the model.
        formats: readers of local files in formats of the source's own, by file suffix (e.g.
            ``{".h5": read_keras}``); other files are state dicts read by the one reader.
        missing: for a source installed with a package (offline), what is missing and how to
            install it, or None when nothing is; ``gancr validate`` asks it before building.

    Raises:
        ValueError: ``name`` is registered already.
    """

    def register(load: Loader) -> Loader:
        if name in _SOURCES:
            raise ValueError(f"pretrained source {name!r} is registered already (by {_SOURCES[name].load.__module__})")
        _SOURCES[name] = Source(name, load, label, preprocessing, (load.__doc__ or "").strip().split("\n")[0],
                                dict(formats or {}), missing)
        return load

    return register


def sources() -> list[str]:
    """The names of the registered sources."""
    return sorted(_SOURCES)


def get_source(name: str) -> Source:
    """The registered source ``name``.

    Raises:
        BuildError: no such source (the registered ones are named).
    """
    try:
        return _SOURCES[name]
    except KeyError:
        raise BuildError(f"no pretrained source {name!r}; the sources are {', '.join(sources())}") from None


def load_pretrained(source: str, name: str, *, file: str | os.PathLike[str] | None = None) -> Pretrained:
    """The pretrained weights of model ``name`` from ``source`` — or from the local ``file`` when given.

    A local file is a state dict in the source's layout (``.safetensors`` or a ``torch.save``
    file), or a file in a format of the source's own (its ``formats``, by suffix). A safetensors
    file that records ``gancr.preprocessing`` in its metadata (a converted file, see
    :func:`gancr.storage.hed.convert_hed`) brings its own preprocessing; any other file gets the
    source's.

    Raises:
        BuildError: unknown source; not cached and cannot be downloaded (offline), or the download failed.
        CheckpointError: a file that is missing, unreadable, unsafe or not a state dict.
    """
    found = get_source(source)
    if file is None:
        return found.load(name)
    path = Path(file).expanduser()
    for suffix, read in found.formats.items():
        if path.name.lower().endswith(suffix):
            return read(path)
    what = f"{found.describe(name)} weights"
    stored = read_file(path, what)
    state = state_dict_of(stored, what)
    recorded = stored.metadata.get(PREPROCESSING_KEY)
    return Pretrained(state, str(file), preprocessing_from_json(recorded, path) if recorded else found.preprocessing)


#: The safetensors metadata key under which a converted weights file records its preprocessing.
PREPROCESSING_KEY = "gancr.preprocessing"


def preprocessing_to_json(preprocessing: Preprocessing) -> str:
    """``preprocessing`` as the JSON text a converted file records (:data:`PREPROCESSING_KEY`)."""
    import json

    return json.dumps({"mean": list(preprocessing.mean), "std": list(preprocessing.std),
                       "scale": preprocessing.scale, "channels": preprocessing.channels})


def preprocessing_from_json(text: str, path: Path) -> Preprocessing:
    """The :class:`Preprocessing` a converted file records.

    Raises:
        CheckpointError: not the JSON that :func:`preprocessing_to_json` writes.
    """
    import json

    try:
        data = json.loads(text)
        mean, std = tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"])
        scale, channels = float(data["scale"]), data["channels"]
        if len(mean) != 3 or len(std) != 3 or channels not in ("RGB", "BGR") or not all(std) or scale <= 0:
            raise ValueError(f"mean {mean}, std {std}, scale {scale}, channels {channels!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: its metadata {PREPROCESSING_KEY!r} is not a preprocessing gancr "
                              f"wrote ({exc}): {text[:200]!r}") from None
    return Preprocessing(mean, std, scale, channels)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------
# caches and the network
# ----------------------------------------------------------------------------------------


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def reachable(url: str) -> str | None:
    """``None`` when ``url``'s host (or the HTTPS proxy) accepts a connection within the timeout,
    else why not. One attempt, no retries: a quick answer to "can a download work at all?"."""
    import socket
    from urllib.parse import urlparse

    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or os.environ.get("ALL_PROXY")
    target = urlparse(proxy if proxy else url)
    host, port = target.hostname, target.port or (443 if target.scheme in ("https", "") else 80)
    if not host:
        return f"no host in {url!r}"
    try:
        timeout = float(os.environ.get("GANCR_NETWORK_TIMEOUT", DEFAULT_NETWORK_TIMEOUT))
    except ValueError:
        timeout = DEFAULT_NETWORK_TIMEOUT
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc or type(exc).__name__})"
    return None


def hub_checkpoints_dir() -> Path:
    """Torch hub's cache of weight files: ``$TORCH_HOME/hub/checkpoints``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def offline_error(what: str, why: str, where: str, filename: str, extra: str = "") -> BuildError:
    """The one message for weights that are not cached and cannot be downloaded."""
    return BuildError(
        f"{what}: pretrained: true needs its weights, which are not on this machine, and they cannot be "
        f"downloaded: {why}. Download them on a connected machine ({where}) and give the file as "
        f"`weights: /path/to/{filename}`{extra}, or set pretrained: false; {OFFLINE_HELP}"
    )


def _download_error(what: str, exc: BaseException, where: str) -> BuildError:
    return BuildError(
        f"cannot get the pretrained weights of {what} ({type(exc).__name__}: {exc}). Offline? Download them on "
        f"a connected machine ({where}) and pass `weights: /path/to/file`, or set pretrained: false; {OFFLINE_HELP}"
    )


def _hub_file(url: str, what: str) -> Path:
    """``url``'s file in torch hub's cache, downloaded there (its SHA-256 checked against the prefix
    in its name) when missing and the host answers."""
    import torch

    path = hub_checkpoints_dir() / os.path.basename(url)
    if path.is_file():
        return path
    why = reachable(url)
    if why is not None:
        raise offline_error(what, why, url, path.name, ", or put it in torch hub's cache")
    match = torch.hub.HASH_REGEX.search(path.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(path), match.group(1) if match else None, progress=False)
    except Exception as exc:  # noqa: BLE001 - urllib, ssl, http and hash errors
        raise _download_error(what, exc, url) from None
    return path


# ----------------------------------------------------------------------------------------
# the sources
# ----------------------------------------------------------------------------------------


@source("torchvision")
def _torchvision(name: str) -> Pretrained:
    """torchvision's default weights of a model (``vgg19``: ImageNet), from torch hub's cache or downloaded."""
    from torchvision.models import get_model_weights

    try:
        weights = get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise BuildError(f"torchvision has no pretrained weights for {name!r}") from None
    transforms = weights.transforms()
    path = _hub_file(weights.url, name)
    return Pretrained(read_state_dict(path, f"{name} weights"), str(path),
                      Preprocessing(tuple(transforms.mean), tuple(transforms.std)))  # type: ignore[arg-type]


@source("timm", label="timm {name}", preprocessing=None)
def _timm(name: str) -> Pretrained:
    """timm's pretrained weights of a model, from the Hugging Face or torch hub cache, or downloaded."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        raise BuildError(f"timm has no pretrained weights for {name!r}")
    what = f"timm {name}"
    path = _timm_cached(cfg) or _timm_download(cfg, what)
    mean, std = getattr(cfg, "mean", None), getattr(cfg, "std", None)
    preprocessing = Preprocessing(tuple(mean), tuple(std)) if mean and std else None  # type: ignore[arg-type]
    return Pretrained(read_state_dict(path, f"{what} weights"), str(path), preprocessing)


_HF_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def _timm_cached(cfg: object) -> Path | None:
    """The file of a timm model's weights in the Hugging Face cache, or torch hub's, if any."""
    hf_id, url = getattr(cfg, "hf_hub_id", None), getattr(cfg, "url", None)
    if hf_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = hf_id.partition("@")
        for filename in (getattr(cfg, "hf_hub_filename", None) or _HF_FILES[0], *_HF_FILES):
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    if url and (hub_checkpoints_dir() / os.path.basename(url)).is_file():
        return hub_checkpoints_dir() / os.path.basename(url)
    return None


def _timm_download(cfg: object, what: str) -> Path:
    hf_id, url = getattr(cfg, "hf_hub_id", None), getattr(cfg, "url", None)
    if not hf_id:
        if not url:
            raise BuildError(f"{what}: its pretrained_cfg names no file to download")
        return _hub_file(url, what)
    where = f"huggingface.co/{hf_id}: model.safetensors"
    if _truthy("HF_HUB_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE"):
        why = "HF_HUB_OFFLINE is set"
    else:
        why = reachable(f"https://huggingface.co/{hf_id}")
    if why is not None:
        raise offline_error(what, why, where, "model.safetensors", " (or copy the Hugging Face cache over)")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    repo, _, revision = hf_id.partition("@")
    names = (getattr(cfg, "hf_hub_filename", None) or _HF_FILES[0], *_HF_FILES[1:])
    for filename in names:
        try:
            return Path(hf_hub_download(repo, filename, revision=revision or None))
        except EntryNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - http, ssl and hub errors
            raise _download_error(what, exc, where) from None
    raise BuildError(f"{what}: huggingface.co/{hf_id} holds none of {', '.join(names)}")


# ----------------------------------------------------------------------------------------
# key layouts
# ----------------------------------------------------------------------------------------


def vgg_features(state: dict[str, Tensor], last: int) -> dict[str, Tensor]:
    """A VGG state dict in torchvision's layout -> the keys of its ``features`` up to index ``last``.

    torchvision's keys are ``features.<index>.*`` (and ``classifier.*``, dropped); a
    features-only file has ``<index>.*``. Layers past ``last`` are dropped (they are not built);
    keys that are not torchvision's stay in, so that ``load_state_dict`` names them.
    """
    state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
    return {k: v for k, v in state.items() if not k.split(".")[0].isdigit() or int(k.split(".")[0]) <= last}
